"""A bare Celery message: one that reached a queue around payq's doors, and what its worker makes of it.

A store backend on Celery enqueues the way Celery teaches,
``app.send_task("payments.capture", kwargs={...})``, without payq's producer.
Its message has Celery's own task id and no job record, so it has passed none
of enqueue's rules. BEGIN tells (``Verdict.UNRECORDED``), and the worker then
enqueues it exactly as ``payq enqueue`` would (:func:`tasks.producer.prepare`
and the enqueue script): validated, recorded under its natural key in one
atomic step with the trip's books, deduplicated, and refused as
``invalid-job`` naming the field when a rule says no. The message itself then
ends: the job it became runs under its own id, once, like any other.

Pure: the worker (:mod:`workers.execution`) carries this out.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payapi.models import REFUND_REQUEST_ID_PATTERN
from payapi.operations import Operation

# A bare refund without a refundRequestId whose message id is not a UUID gets one derived from that id, in this namespace.
_BARE_REFUNDS = uuid.UUID("6f1d3c2e-8a4b-5c7d-9e0f-1a2b3c4d5e6f")


@dataclass(frozen=True)
class Admitted:
    """A bare message enqueued as the job ``job_id``: ``created`` now, or already on record (the same job sent again: nothing new runs)."""

    job_id: str
    created: bool

    @property
    def result(self) -> dict[str, Any]:
        """What Flower shows as the bare message's result: the job it became."""
        return {"enqueuedAs": self.job_id, "created": self.created}


def bare_fields(operation: Operation, fields: Mapping[str, Any], message_id: str) -> dict[str, Any]:
    """A bare message's kwargs with a refund's missing ``refundRequestId`` fixed from the message's own id.

    The producer makes a fresh UUID for a refund sent without one, once, at
    enqueue. A bare message is enqueued each time it is delivered, and Celery
    delivers a message again when its worker died before acknowledging it:
    a fresh UUID each time would make that one refund two. Its message id is
    fixed by the sender and the same on every delivery, so the key derives
    from it (the id itself when it is a UUID as the field's rule takes them, as Celery makes them; else a UUID derived from it). Every
    other field is the sender's (a feedback's ``paymentStatusTime`` is still
    stamped at enqueue when left out: docs/store-backends.md asks for it).
    """
    filled = dict(fields)
    if operation is Operation.REFUND and filled.get("refundRequestId") is None:
        key = message_id.lower()
        filled["refundRequestId"] = key if re.fullmatch(REFUND_REQUEST_ID_PATTERN, key) else str(uuid.uuid5(_BARE_REFUNDS, message_id))
    return filled
