"""A store backend's own Celery producer, in a process of its own: ``send_task`` with nothing of payq imported."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

from tests.support.names import queue_of, task_of

# A store backend's own Celery app: nothing of payq imported. Reads [[task, queue, kwargs, task id or null], ...] as JSON
# from stdin, an object {"$decimal": "21.00"} as that Decimal, and prints each message's task id.
SENDER = """
import json, sys
from decimal import Decimal
from celery import Celery
app = Celery(broker=sys.argv[1])
def decimal(obj):
    return Decimal(obj["$decimal"]) if set(obj) == {"$decimal"} else obj
for task, queue, kwargs, task_id in json.loads(sys.stdin.read(), object_hook=decimal):
    print(app.send_task(task, kwargs=kwargs, queue=queue, task_id=task_id).id)
"""


def send_task(redis_url: str, *messages: tuple[str, dict[str, Any]], task_id: str | None = None) -> list[str]:
    """Send ``(operation, kwargs)`` messages with ``send_task`` from a separate process; their Celery task ids.

    ``task_id``: each message's id, as a sender may choose it (None: Celery makes a UUID for each).
    """
    batch = [[task_of(op), queue_of(op), kwargs, task_id] for op, kwargs in messages]
    sent = subprocess.run([sys.executable, "-c", SENDER, redis_url], input=json.dumps(batch, default=_decimal),
                          capture_output=True, text=True, timeout=60, check=False)
    assert sent.returncode == 0, sent.stderr
    return sent.stdout.split()


def _decimal(value: object) -> dict[str, str]:
    assert isinstance(value, Decimal), value
    return {"$decimal": format(value, "f")}


def capture(trip: str, amount: object, store: str = "s1") -> tuple[str, dict[str, Any]]:
    """A capture's ``(operation, kwargs)`` for :func:`send_task`."""
    return "capture", {"storeId": store, "shoppingTripId": trip, "amount": {"amount": amount, "code": "USD"}}


def refund(trip: str, amount: object, **more: object) -> tuple[str, dict[str, Any]]:
    """A refund's ``(operation, kwargs)`` for :func:`send_task` (``more``: e.g. its ``refundRequestId``)."""
    return "refund", {"storeId": "s1", "shoppingTripId": trip, "amount": {"amount": amount, "code": "USD"},
                      "refundReasonCode": "DAMAGED_ITEM", **more}
