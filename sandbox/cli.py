"""``python -m sandbox`` / ``payq sandbox``: run the sandbox payment API from the command line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from payapi.operations import Operation
from sandbox.faults import FaultScriptError, load_script
from sandbox.ratelimit import SPEC_FORM, RateLimit, RateLimitError, RateLimits, parse_spec
from sandbox.server import DEFAULT_LOG_LIMIT, run
from sandbox.sigv4 import MAX_CLOCK_SKEW_SECONDS, SigV4Verifier


class RateLimitSpec(click.ParamType[tuple[Operation, RateLimit]]):
    """``ENDPOINT=PER_SECOND[:RETRY_AFTER]`` → ``(Operation, RateLimit)``; a bad one is a usage error naming the option."""

    name = "rate limit"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return SPEC_FORM

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[Operation, RateLimit]:
        if isinstance(value, tuple):
            return value  # already converted (a default)
        try:
            return parse_spec(str(value))
        except RateLimitError as exc:
            self.fail(str(exc), param, ctx)


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
@click.option(
    "--rate-limit", "rate_limit_specs", type=RateLimitSpec(), multiple=True, envvar="PAYQ_SANDBOX_RATE_LIMIT", show_envvar=True,
    help="At most PER_SECOND calls to ENDPOINT (capture, cancel, refund, feedback) in any one-second window; past it, "
         "429 with Retry-After: RETRY_AFTER (default 1). Repeatable (the variable: space-separated). "
         "A fault script's rate_limits replace these until POST /admin/reset.",
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
@click.option(
    "--notify-secret", envvar="PAYQ_SANDBOX_NOTIFY_SECRET", show_envvar=True,
    help="The whsec_ secret payq signs outcome notifications with: POST /admin/notifications then checks each signature. "
         "Prefer the environment variable.",
)
def sandbox_command(
    host: str, port: int, latency_ms: float, faults_file: Path | None, rate_limit_specs: Sequence[tuple[Operation, RateLimit]],
    auto_register: bool, log_limit: int,
    require_sigv4: bool, access_key: str | None, secret_key: str | None, region: str | None, service: str, notify_secret: str | None,
) -> None:
    """Run the sandbox payment API: the four endpoints, a trip ledger, scripted faults and /admin/*."""
    faults = None
    if faults_file is not None:
        try:
            faults = load_script(faults_file)
        except FaultScriptError as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    rate_limits = _rate_limits(rate_limit_specs)
    if rate_limits:
        click.echo(f"sandbox rate limits: {_describe(rate_limits)}", err=True)
    if faults is not None and faults.rate_limits is not None:
        # the file's limits win while its script is in force; say so, or the line above misleads
        click.echo(f"sandbox rate limits from --faults until POST /admin/reset: {_describe(faults.rate_limits) or 'none'}", err=True)
    verifier = _verifier(require_sigv4, access_key, secret_key, region, service)
    try:
        run(
            host, port, latency_ms=latency_ms, faults=faults, auto_register=auto_register, log_limit=log_limit,
            verifier=verifier, rate_limits=rate_limits, notify_secret=notify_secret,
        )
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _rate_limits(specs: Sequence[tuple[Operation, RateLimit]]) -> dict[Operation, RateLimit]:
    """The limits per endpoint; one endpoint given twice is a usage error, since neither value is plainly meant."""
    limits: dict[Operation, RateLimit] = {}
    for endpoint, limit in specs:
        if endpoint in limits:
            raise click.BadParameter(f"{endpoint.value} is given more than once", param_hint="'--rate-limit'")
        limits[endpoint] = limit
    return limits


def _describe(limits: RateLimits) -> str:
    return ", ".join(f"{op.value} {limit.per_second}/s (Retry-After: {limit.retry_after})" for op, limit in limits.items())


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
