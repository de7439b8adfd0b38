"""Outcome notifications: one event for every job that succeeds or is dead-lettered, signed per Standard Webhooks.

An event is appended to the outbox stream (:mod:`tasks.notify.outbox`) in the same
atomic step that records the outcome it tells of, so an outcome is never
recorded without its event nor an event sent for an outcome that was not. Its
id, derived from the job's id and outcome, is its ``webhook-id`` on every
delivery; a second recording of the same outcome (a message delivered twice)
appends no second event. Each worker process delivers from the outbox with a
few threads of its own (:mod:`workers.delivery`), never with a job's thread:
a slow or dead receiver delays no payment job. Failed deliveries follow
:mod:`tasks.notify.schedule` for about a day, then are dead-lettered as
``notify-failed`` and replayable.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from payapi.models import NotificationData, NotificationEvent
from payapi.operations import Operation
from payapi.outcomes import Failure
from tasks.states import DeadLetterReason

SUCCEEDED = "job.succeeded"
DEAD_LETTERED = "job.dead_lettered"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def public_result(result: dict[str, Any]) -> dict[str, Any]:
    """A job's result as a store backend reads it: a capture's ``settledAt`` (kept as epoch seconds, the report's time) in UTC ISO 8601."""
    settled = result.get("settledAt")
    if isinstance(settled, int | float) and not isinstance(settled, bool):
        return {**result, "settledAt": datetime.fromtimestamp(settled, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return result


def succeeded(job_id: str, operation: Operation, kwargs: Mapping[str, Any], result: dict[str, Any], now: float) -> NotificationEvent:
    """The event for ``job_id``'s success (one per job: it succeeds once)."""
    data = NotificationData(jobId=job_id, operation=operation.value, storeId=kwargs.get("storeId"),
                            shoppingTripId=kwargs.get("shoppingTripId"), state="succeeded", result=public_result(result), status=200)
    return NotificationEvent(id=f"{job_id}:succeeded", type=SUCCEEDED, timestamp=_iso(now), data=data)


def dead_lettered(job_id: str, operation: Operation, kwargs: Mapping[str, Any], reason: DeadLetterReason, failure: Failure,
                  replays: int, now: float) -> NotificationEvent:
    """The event for ``job_id``'s dead-lettering after ``replays`` replays (a replayed job that fails again is a new outcome)."""
    data = NotificationData(jobId=job_id, operation=operation.value, storeId=kwargs.get("storeId"),
                            shoppingTripId=kwargs.get("shoppingTripId"), state="dead-lettered", reason=reason.value,
                            status=failure.status, errorMsg=failure.error_msg or failure.describe())
    return NotificationEvent(id=f"{job_id}:dead:{replays}", type=DEAD_LETTERED, timestamp=_iso(now), data=data)


def test_event(now: float) -> NotificationEvent:
    """What ``payq notify test`` sends: a ``test`` event about no job."""
    data = NotificationData(jobId="test", operation="notify", state="succeeded", result={"test": True}, status=200)
    return NotificationEvent(id=f"test:{int(now * 1000)}", type="test", timestamp=_iso(now), data=data)


def new_secret() -> str:
    """A new Standard Webhooks signing secret: ``whsec_`` and the base64 of 32 random bytes (the spec asks for 24 to 64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
