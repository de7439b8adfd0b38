"""``payq pace reset OP``: lift an endpoint's pause and forget what its 429s taught (:mod:`tasks.pacing.endpoints`); ``payq pace log``: who did."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click

from payapi.operations import API_OPERATIONS, Operation
from payq.cli.operator import who
from payq.exits import exits_cleanly, stores_from_env
from payq.views import iso, public
from tasks.pacing.endpoints import LOG_KEPT, EndpointLog
from tasks.redis.connection import with_retry


@click.group()
def pace() -> None:
    """Endpoint paces: lift a pause and a learned pace by hand."""


@pace.command("reset")
@click.argument("operation", metavar="OP", type=click.Choice([op.value for op in API_OPERATIONS]))
def pace_reset(operation: str) -> None:
    """End OP's pause and forget the pace its 429s taught; the jobs deferred for them run now.

    For when the API's limit is known to be gone (raised by its owners, or the
    429s came from something since fixed): otherwise the next 429 pauses and
    paces the endpoint again. The configured limit (PAYQ_RATE_LIMITS) still
    holds. Jobs deferred for the pause, for their turn at the pace or by a
    429's Retry-After are made due at once; the lift is recorded in the
    endpoint log, shown on the console's overview.
    """
    with exits_cleanly():
        rt = stores_from_env()
        log = EndpointLog(rt.redis)
        lifted = with_retry(rt.settings, lambda: log.lift(Operation(operation), who("payq pace reset"), time.time()))
        click.echo(lifted.describe())


@pace.command("log")
@click.option("--limit", type=click.IntRange(1, LOG_KEPT), default=10, show_default=True, help="How many of the latest lifts.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (times as UTC ISO 8601).")
def pace_log(limit: int, as_json: bool) -> None:
    """The latest lifts of a pause and learned pace, newest first: when, by whom, what was lifted."""
    with exits_cleanly():
        rt = stores_from_env()
        log = EndpointLog(rt.redis)
        lifts = with_retry(rt.settings, lambda: log.recent(limit))
        if as_json:
            click.echo(json.dumps([public(asdict(lift)) for lift in lifts], indent=2))
            return
        for lift in lifts:
            click.echo(f"{iso(lift.at)}  {lift.by}: {lift.describe()}")
        if not lifts:
            click.echo("no pause or learned pace has been lifted by hand", err=True)
