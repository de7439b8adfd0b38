"""``payq serve``: run the HTTP intake and the console with uvicorn."""

from __future__ import annotations

import logging
import sys

import click

from workers.cli.support import EXIT_FAULT, settings_from_env


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on  [default: PAYQ_SERVE_HOST, 127.0.0.1]")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on  [default: PAYQ_SERVE_PORT, 8088]")
def serve_command(host: str | None, port: int | None) -> None:
    """Serve the HTTP intake for store backends (/v1/...) and the operators' console (/console/)."""
    # imported here, not at the top: every other payq command would pay for loading the web stack
    import uvicorn

    from workers.serve.app import create_app

    settings = settings_from_env()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        create_app(settings), host=host or settings.serve_host, port=settings.serve_port if port is None else port,
        # the access log would print every request's path: job ids, store and trip ids, no secrets, but a line per job
        access_log=False, log_level="info", proxy_headers=False, server_header=False,
    )
    try:
        uvicorn.Server(config).run()
    except OSError as exc:
        click.echo(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_FAULT)
