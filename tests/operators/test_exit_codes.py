"""Exit codes every operator command keeps: 2 invalid input, 1 Redis unreachable with a one-line cause, 78 a bad setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.payq_cli import invoke, run
from tests.support.ports import free_port


@pytest.fixture
def dead_redis_url() -> str:
    """A Redis URL nothing listens on."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize("args", [
    ("dlq", "list"),
    ("dlq", "list", "--json"),
    ("dlq", "show", "cancel:s1:t1"),
    ("dlq", "replay", "--all"),
    ("dlq", "purge", "--all", "--yes"),
    ("job", "capture:s1:t1", "--json"),
    ("stats", "--json"),
])
def test_redis_unreachable_exits_1_with_one_line_naming_the_cause(dead_redis_url: str, args: tuple[str, ...]) -> None:
    ran = invoke(dead_redis_url, *args)

    assert ran.code == 1
    assert ran.stdout == ""
    [line] = [s for s in ran.stderr.splitlines() if s != "replaying"]
    assert line.startswith(f"error: cannot reach Redis at {dead_redis_url}: ")


def test_the_console_script_exits_1_when_redis_is_unreachable(dead_redis_url: str) -> None:
    ran = run(dead_redis_url, "stats")

    assert ran.code == 1
    assert ran.stderr.startswith("error: cannot reach Redis at ")
    assert len(ran.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "says"), [
    (("dlq", "list", "--since", "3x"), "--since: must be a duration"),
    (("dlq", "list", "--reason", "bored"), "Invalid value for '--reason'"),
    (("dlq", "list", "--operation", "charge"), "Invalid value for '--operation'"),
    (("dlq", "show"), "Missing argument 'ID'"),
    (("job",), "Missing argument 'ID'"),
    (("metrics",), "Missing option '--port'"),
    (("metrics", "--port", "70000"), "Invalid value for '--port'"),
])
def test_invalid_input_exits_2_naming_the_problem(redis_url: str, args: tuple[str, ...], says: str) -> None:
    ran = invoke(redis_url, *args)

    assert ran.code == 2
    assert says in ran.stderr


BAD_SETTINGS = [
    pytest.param({"PAYQ_NOTIFY_URL": "http://127.0.0.1:9/hook", "PAYQ_NOTIFY_SECRET": "whsec_wrong"}, "PAYQ_NOTIFY_SECRET", id="whsec-not-base64"),
    pytest.param({"PAYQ_INTAKE_TOKENS": "{not json"}, "PAYQ_INTAKE_TOKENS: must be JSON", id="tokens-not-json"),
    pytest.param({"PAYQ_CONSOLE_BASIC_AUTH": "admin"}, "PAYQ_CONSOLE_BASIC_AUTH: must be user:password", id="console-auth-no-colon"),
    pytest.param({"PAYQ_RATE_LIMITS": '{"capture": -1}'}, "PAYQ_RATE_LIMITS: calls per second", id="rate-limit-negative"),
]


def _config_refusal(ran_code: int, stderr: str, names: str) -> None:
    assert ran_code == 78, stderr  # EX_CONFIG: a supervisor told not to restart on it stops, instead of looping
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "invalid configuration" in line]
    assert lines and all(names.split(":")[0] in line for line in lines), stderr
    assert "whsec_wrong" not in stderr, "a secret's value is never shown"


@pytest.mark.parametrize(("env", "names"), BAD_SETTINGS)
def test_a_bad_setting_exits_78_naming_its_variable(dead_redis_url: str, env: dict[str, str], names: str) -> None:
    ran = run(dead_redis_url, "stats", **env)

    _config_refusal(ran.code, ran.stderr, names)


@pytest.mark.parametrize("args", [("notify", "test"), ("serve", "--port", "0")], ids=["notify-test", "serve"])
def test_payq_serve_and_notify_test_exit_78_on_a_malformed_secret(dead_redis_url: str, args: tuple[str, ...]) -> None:
    ran = run(dead_redis_url, *args, **BAD_SETTINGS[0].values[0])

    _config_refusal(ran.code, ran.stderr, "PAYQ_NOTIFY_SECRET")


@pytest.mark.parametrize(("env", "names"), BAD_SETTINGS[:1])
def test_the_worker_exits_78_naming_the_variable(dead_redis_url: str, env: dict[str, str], names: str, tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-P", "solo"], cwd=tmp_path,
                          env={**base, "PAYQ_REDIS_URL": dead_redis_url, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **env},
                          capture_output=True, text=True, timeout=60, check=False)

    _config_refusal(done.returncode, done.stderr, names)


def test_empty_variables_mean_unset_and_payq_serve_starts() -> None:
    # PAYQ_INTAKE_TOKENS= crashed payq serve, PAYQ_CONSOLE_BASIC_AUTH= was "invalid", PAYQ_NOTIFY_URL= a MissingSchema later
    from tests.support.serve import ServeProcess

    with ServeProcess(f"redis://127.0.0.1:{free_port()}/0", env={"PAYQ_INTAKE_TOKENS": "", "PAYQ_CONSOLE_BASIC_AUTH": "",
                                                                  "PAYQ_NOTIFY_URL": "", "PAYQ_NOTIFY_SECRET": ""}) as serve:
        assert serve.request("GET", "/healthz").status_code == 200
        assert serve.request("GET", "/v1/jobs/x").status_code == 401
        assert serve.request("GET", "/console/").status_code == 404, "the console is off"


def test_payq_notify_secret_prints_a_secret_payq_accepts(dead_redis_url: str) -> None:
    ran = run(dead_redis_url, "notify", "secret")

    assert ran.code == 0, ran.stderr
    [secret] = ran.stdout.split()
    checked = run(dead_redis_url, "notify", "test", PAYQ_NOTIFY_URL="http://127.0.0.1:9/hook", PAYQ_NOTIFY_SECRET=secret)
    assert checked.code == 1 and "invalid configuration" not in checked.stderr, checked.stderr  # taken; nothing listens there
