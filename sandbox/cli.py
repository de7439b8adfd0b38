"""``python -m sandbox`` / ``payq sandbox``: run the sandbox payment API from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from sandbox.faults import FaultScriptError, load_script
from sandbox.server import DEFAULT_LOG_LIMIT, run
from sandbox.sigv4 import MAX_CLOCK_SKEW_SECONDS, SigV4Verifier


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on (0 picks a free one)."
)
@click.option(
    "--latency-ms", type=click.FloatRange(min=0), default=0, show_default=True,
    help="Added to every API answer, in milliseconds (asynchronous: costs no thread).",
)
@click.option(
    "--faults", "faults_file", type=click.Path(dir_okay=False, path_type=Path),
    help='JSON fault script, {"rules": [...]}; replaceable later with POST /admin/faults.',
)
@click.option("--auto-register", is_flag=True, help="Accept any trip; its trip time is when it is first seen.")
@click.option(
    "--log-limit", type=click.IntRange(min=1), default=DEFAULT_LOG_LIMIT, show_default=True,
    help="Most API requests kept in the request log (GET /admin/requests); the oldest go first.",
)
@click.option(
    "--require-sigv4", is_flag=True, envvar="PAYQ_SANDBOX_REQUIRE_SIGV4", show_envvar=True,
    help=f"Refuse (403) any API request not signed with AWS SigV4 for --access-key/--secret-key, "
         f"or signed over {MAX_CLOCK_SKEW_SECONDS / 60:g} minutes from the sandbox's clock. /admin/* stays open.",
)
@click.option("--access-key", envvar="PAYQ_SANDBOX_ACCESS_KEY", show_envvar=True, help="With --require-sigv4: the one access key id accepted.")
@click.option(
    "--secret-key", envvar="PAYQ_SANDBOX_SECRET_KEY", show_envvar=True,
    help="With --require-sigv4: its secret access key. Prefer the environment variable: a command line is visible in ps.",
)
@click.option(
    "--region", envvar="PAYQ_SANDBOX_REGION", show_envvar=True,
    help="With --require-sigv4: the region the credential scope must name (default: any; the signature still covers it).",
)
@click.option(
    "--service", default="execute-api", show_default=True, envvar="PAYQ_SANDBOX_SERVICE", show_envvar=True,
    help="With --require-sigv4: the service the credential scope must name.",
)
def sandbox_command(
    host: str, port: int, latency_ms: float, faults_file: Path | None, auto_register: bool, log_limit: int,
    require_sigv4: bool, access_key: str | None, secret_key: str | None, region: str | None, service: str,
) -> None:
    """Run the sandbox payment API: the four endpoints, a trip ledger, scripted faults and /admin/*."""
    faults = None
    if faults_file is not None:
        try:
            faults = load_script(faults_file)
        except FaultScriptError as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    verifier = _verifier(require_sigv4, access_key, secret_key, region, service)
    try:
        run(host, port, latency_ms=latency_ms, faults=faults, auto_register=auto_register, log_limit=log_limit, verifier=verifier)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _verifier(required: bool, access_key: str | None, secret_key: str | None, region: str | None, service: str) -> SigV4Verifier | None:
    """The SigV4 check the options ask for, or None; a half-given configuration is a usage error, not a silent open door."""
    if not required:
        if access_key or secret_key:
            # a warning, not an error: the keys may come from an environment shared with unsigned sandboxes
            click.echo("warning: SigV4 keys given without --require-sigv4: requests are not checked", err=True)
        return None
    absent = [name for name, value in (("--access-key", access_key), ("--secret-key", secret_key)) if not value]
    if absent:
        raise click.UsageError(f"--require-sigv4 needs {' and '.join(absent)} (or PAYQ_SANDBOX_ACCESS_KEY / PAYQ_SANDBOX_SECRET_KEY)")
    assert access_key and secret_key
    # the access key id is not a secret (every signed request carries it); the secret key is never printed
    click.echo(f"sandbox requires SigV4: access key {access_key}, region {region or 'any'}, service {service}", err=True)
    return SigV4Verifier(access_key, secret_key, region=region, service=service)
