"""``payq notify test``: send one signed test event to ``PAYQ_NOTIFY_URL``, to check a receiver before real outcomes reach it.

``payq notify secret``: print a new ``PAYQ_NOTIFY_SECRET``.
"""

from __future__ import annotations

import sys
import time

import click

from payapi.errors import FieldProblem, InvalidRequest
from payapi.outcomes import Success
from payq.exits import EXIT_FAULT, exits_cleanly, settings_from_env
from tasks.notify.client import webhook_client
from tasks.notify.events import new_secret, test_event


@click.group("notify")
def notify() -> None:
    """Outcome notifications to store backends (Standard Webhooks)."""


@notify.command("test")
def notify_test() -> None:
    """POST a signed ``test`` event to PAYQ_NOTIFY_URL and say how the receiver answered (exit 0 on a 2xx, 1 otherwise)."""
    with exits_cleanly():
        sender = webhook_client(settings_from_env())
        if sender is None:
            raise InvalidRequest([FieldProblem("PAYQ_NOTIFY_URL", "is not set: notifications are off (set it and PAYQ_NOTIFY_SECRET)")])
        event = test_event(time.time())
        outcome = sender.deliver_event(event)
        if isinstance(outcome, Success):
            click.echo(f"delivered {event.id}: the receiver answered HTTP {outcome.status}")
            return
        click.echo(f"not delivered {event.id}: {outcome.failure.describe()}", err=True)
        sys.exit(EXIT_FAULT)


@notify.command("secret")
def notify_secret() -> None:
    """Print a new signing secret for PAYQ_NOTIFY_SECRET: whsec_ and the base64 of 32 random bytes.

    Give the same secret to the store backend that verifies the notifications
    (any Standard Webhooks library takes it as it is). Reads no settings.
    """
    click.echo(new_secret())
