"""``payq serve``: run the HTTP intake and the console with uvicorn; ``payq token new``: a token for a store backend; ``payq console user``: a console user.

Neither imports the web stack at the top: every other ``payq`` command loads this module.
"""

from __future__ import annotations

import json
import logging
import re
import sys

import click

from payapi.models import STORE_ID_PATTERN
from payq.exits import EXIT_FAULT, EXIT_INVALID, settings_from_env
from payq.serve.access import digest, new_token

log = logging.getLogger("payq.serve")


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on  [default: PAYQ_SERVE_HOST, 127.0.0.1]")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on  [default: PAYQ_SERVE_PORT, 8088]")
def serve_command(host: str | None, port: int | None) -> None:
    """Serve the HTTP intake for store backends (/v1/...) and the operators' console (/console/)."""
    # imported here, not at the top: every other payq command would pay for loading the web stack
    import uvicorn

    from payq.serve.app import create_app
    from tasks import tracing

    settings = settings_from_env()
    tracing.setup("payq-serve")  # from the OTEL_* environment: off without an OTLP endpoint
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.intake_tokens:
        log.warning("PAYQ_INTAKE_TOKENS is empty: every /v1 request will be refused 401 (payq token new --store S makes a token)")
    config = uvicorn.Config(
        create_app(settings), host=host or settings.serve_host, port=settings.serve_port if port is None else port,
        # the access log would print every request's path: job ids, store and trip ids, no secrets, but a line per job
        access_log=False, log_level="info", server_header=False,
        # forwarded headers are payq's to judge (payq.serve.edge, PAYQ_SERVE_FORWARDED_ALLOW_IPS), never uvicorn's default of 127.0.0.1
        proxy_headers=False,
        # httptools drops what a client still sends after a 413 until it is done (or the keep-alive timeout), so it reads the answer
        http="httptools",
    )
    try:
        uvicorn.Server(config).run()
    except OSError as exc:
        click.echo(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_FAULT)


@click.group("token")
def token_group() -> None:
    """Tokens for the HTTP intake (payq serve): each lets a store backend use the storeIds it was made for."""


@token_group.command("new")
@click.option("--store", "stores", multiple=True, required=True, metavar="STORE_ID",
              help="A storeId the token may use; repeat for more.")
@click.option("--json", "as_json", is_flag=True, help='Print {"token", "sha256", "stores"} as JSON.')
def token_new(stores: tuple[str, ...], as_json: bool) -> None:
    """Print a new random token (once: payq keeps only its SHA-256) and its PAYQ_INTAKE_TOKENS entry.

    The first line is the token, for the store backend's secret store; the
    second the JSON entry to merge into PAYQ_INTAKE_TOKENS (a JSON object:
    SHA-256 hex -> storeIds). payq serve reads it at start.
    """
    bad = [store for store in stores if not (0 < len(store) <= 255 and re.fullmatch(STORE_ID_PATTERN, store))]
    if bad:
        for store in bad:
            click.echo(f"invalid: --store: {store!r} must match {STORE_ID_PATTERN} and be 1 to 255 characters", err=True)
        sys.exit(EXIT_INVALID)
    token = new_token()
    unique = list(dict.fromkeys(stores))
    if as_json:
        click.echo(json.dumps({"token": token, "sha256": digest(token), "stores": unique}))
        return
    click.echo(token)
    click.echo(json.dumps({digest(token): unique}))
    click.echo("The token (first line) is shown only now: hand it to the store backend, to send as 'Authorization: Bearer <token>'. "
               "Merge the entry (second line) into PAYQ_INTAKE_TOKENS and restart payq serve.", err=True)


@click.group("console")
def console_group() -> None:
    """The operators' console (payq serve's /console/): its users."""


@console_group.command("user")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), default="viewer", show_default=True,
              help="viewer: reads every page; operator: also replays, purges and lifts pauses.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (one line) instead of asking for it twice.")
def console_user(name: str, role: str, password_stdin: bool) -> None:
    """Print NAME's PAYQ_CONSOLE_USERS entry: its role and the bcrypt hash of a password (never the password itself).

    Merge the entry into PAYQ_CONSOLE_USERS (a JSON object: name -> {role, hash})
    and restart payq serve. Passwords are ASCII (HTTP basic auth, as FastAPI
    reads it) and at most 72 bytes (bcrypt's limit).
    """
    from pydantic import ValidationError

    from config.settings import Settings
    from payq.serve.console.users import hash_password

    password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt("Password", hide_input=True,
                                                                                      confirmation_prompt=True)
    problems = []
    try:  # the name's rules, as payq serve will read them (the hash here only fills the entry)
        Settings.model_validate({"console_users": {name: {"role": role, "hash": "$2b$04$" + "." * 53}}})
    except ValidationError as exc:
        problems += [f"NAME: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors(include_url=False)]
    if not password:
        problems.append("password: must not be empty")
    elif not password.isascii() or len(password) > 72:
        problems.append("password: must be ASCII and at most 72 characters (bcrypt's limit)")
    if problems:
        for problem in problems:
            click.echo(f"invalid: {problem}", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(json.dumps({name: {"role": role, "hash": hash_password(password)}}))
    click.echo("Merge this entry into PAYQ_CONSOLE_USERS and restart payq serve.", err=True)
