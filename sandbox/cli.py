"""``python -m sandbox`` / ``payq sandbox``: run the sandbox payment API from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from sandbox.faults import FaultScriptError, load_script
from sandbox.server import DEFAULT_LOG_LIMIT, run


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
def sandbox_command(
    host: str, port: int, latency_ms: float, faults_file: Path | None, auto_register: bool, log_limit: int
) -> None:
    """Run the sandbox payment API: the four endpoints, a trip ledger, scripted faults and /admin/*."""
    faults = None
    if faults_file is not None:
        try:
            faults = load_script(faults_file)
        except FaultScriptError as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    try:
        run(host, port, latency_ms=latency_ms, faults=faults, auto_register=auto_register, log_limit=log_limit)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
