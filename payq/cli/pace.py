"""``payq pace reset OP``: lift an endpoint's pause and forget what its 429s taught (:mod:`tasks.endpoints`)."""

from __future__ import annotations

import time

import click

from payapi.operations import API_OPERATIONS, Operation
from payq.cli.operator import who
from payq.exits import exits_cleanly, stores_from_env
from tasks.endpoints import EndpointLog
from tasks.redis_conn import with_retry


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
