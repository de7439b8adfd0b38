"""``payq sandbox --require-sigv4``: a half-given key pair is a usage error, not an open door."""

from __future__ import annotations

from click.testing import CliRunner

from sandbox.cli import sandbox_command


def test_require_sigv4_without_a_secret_is_a_usage_error_naming_both_ways_to_give_it() -> None:
    result = CliRunner().invoke(sandbox_command, ["--require-sigv4", "--access-key", "AKID"], env={"PAYQ_SANDBOX_SECRET_KEY": None})
    assert result.exit_code == 2
    assert "--require-sigv4 needs --secret-key" in result.output and "PAYQ_SANDBOX_SECRET_KEY" in result.output


def test_require_sigv4_without_any_key_names_both() -> None:
    result = CliRunner().invoke(sandbox_command, ["--require-sigv4"], env={"PAYQ_SANDBOX_ACCESS_KEY": None, "PAYQ_SANDBOX_SECRET_KEY": None})
    assert result.exit_code == 2
    assert "--access-key and --secret-key" in result.output
