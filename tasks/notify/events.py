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
import functools
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from payapi.models import NotificationEvent
from payapi.operations import Operation
from payapi.outcomes import Failure
from tasks.states import DeadLetterReason

SUCCEEDED = "job.succeeded"
DEAD_LETTERED = "job.dead_lettered"


@dataclass(frozen=True, slots=True)
class Event:
    """One event as the outbox takes it: its id (the ``webhook-id``), its job's id, and its JSON body, exactly as POSTed and signed."""

    id: str
    job_id: str
    body: str


def body_of(event: NotificationEvent) -> str:
    """The JSON body of ``event``: what receivers get, the definition :func:`body` keeps to."""
    return json.dumps(event.model_dump(mode="json", exclude_none=True), separators=(",", ":"))


# The values the model writes as json.dumps does, by exact type (a subclass, an Enum say, the model writes otherwise)
_SCALARS = frozenset({str, int, bool, type(None)})
_ID_MAX: int = next(rule.max_length for rule in NotificationEvent.model_fields["id"].metadata if hasattr(rule, "max_length"))


def body(event_id: str, kind: str, timestamp: str, data: Mapping[str, Any]) -> str:
    """The JSON body :func:`body_of` gives for this event (``data``: :class:`~payapi.models.NotificationData`'s fields, in its order).

    Built without the models, which cost most of an event in a busy worker:
    the same fields in the same order, None left out, non-ASCII escaped.
    Anything the models would check or write otherwise (an id out of bounds,
    a text field that is not a string, a result holding a Decimal, a float or
    an Enum) goes through them instead: the bytes are the same either way.
    """
    if 0 < len(event_id) <= _ID_MAX and all(_plain_field(name, value) for name, value in data.items()):
        fields = {name: value for name, value in data.items() if value is not None}
        return json.dumps({"id": event_id, "type": kind, "timestamp": timestamp, "data": fields}, separators=(",", ":"))
    return body_of(NotificationEvent.model_validate({"id": event_id, "type": kind, "timestamp": timestamp, "data": data}))


def _plain_field(name: str, value: Any) -> bool:
    """Whether the model would take ``value`` for field ``name`` as it is and write it as json.dumps does."""
    if name == "result":
        return value is None or _plain(value)
    if name == "status":
        return value is None or type(value) is int
    return value is None or type(value) is str


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return kind in _SCALARS


def _iso(epoch: float) -> str:
    """``epoch`` in UTC ISO 8601 to the microsecond, as ``datetime.fromtimestamp(epoch, UTC)`` writes it."""
    second, micro = _split(epoch)
    return f"{_utc_second(second)}.{micro:06d}Z"


def _split(epoch: float) -> tuple[int, int]:
    """``epoch``'s whole second and microseconds, rounded as ``datetime.fromtimestamp`` rounds: half to even, carried into the second."""
    fraction, whole = math.modf(epoch)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        return int(whole) + 1, micro - 1_000_000
    if micro < 0:
        return int(whole) - 1, micro + 1_000_000
    return int(whole), micro


@functools.lru_cache(maxsize=64)
def _utc_second(second: int) -> str:
    """``second`` (epoch seconds) as UTC ``YYYY-MM-DDTHH:MM:SS``: formatted once a second, not once an event (strftime was a tenth of one)."""
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def public_result(result: dict[str, Any]) -> dict[str, Any]:
    """A job's result as a store backend reads it: a capture's ``settledAt`` (kept as epoch seconds, the report's time) in UTC ISO 8601."""
    settled = result.get("settledAt")
    if isinstance(settled, int | float) and not isinstance(settled, bool):
        return {**result, "settledAt": _utc_second(_split(settled)[0]) + "Z"}
    return result


def succeeded(job_id: str, operation: Operation, kwargs: Mapping[str, Any], result: dict[str, Any], now: float) -> Event:
    """The event for ``job_id``'s success (one per job: it succeeds once)."""
    event_id = f"{job_id}:succeeded"
    data = {"jobId": job_id, "operation": operation.value, "storeId": kwargs.get("storeId"), "shoppingTripId": kwargs.get("shoppingTripId"),
            "state": "succeeded", "result": public_result(result), "status": 200}
    return Event(event_id, job_id, body(event_id, SUCCEEDED, _iso(now), data))


def dead_lettered(job_id: str, operation: Operation, kwargs: Mapping[str, Any], reason: DeadLetterReason, failure: Failure,
                  replays: int, now: float) -> Event:
    """The event for ``job_id``'s dead-lettering after ``replays`` replays (a replayed job that fails again is a new outcome)."""
    event_id = f"{job_id}:dead:{replays}"
    data = {"jobId": job_id, "operation": operation.value, "storeId": kwargs.get("storeId"), "shoppingTripId": kwargs.get("shoppingTripId"),
            "state": "dead-lettered", "reason": reason.value, "status": failure.status,
            "errorMsg": failure.error_msg or failure.describe()}
    return Event(event_id, job_id, body(event_id, DEAD_LETTERED, _iso(now), data))


def test_event(now: float) -> Event:
    """What ``payq notify test`` sends: a ``test`` event about no job."""
    event_id = f"test:{int(now * 1000)}"
    data = {"jobId": "test", "operation": "notify", "state": "succeeded", "result": {"test": True}, "status": 200}
    return Event(event_id, "test", body(event_id, "test", _iso(now), data))


def new_secret() -> str:
    """A new Standard Webhooks signing secret: ``whsec_`` and the base64 of 32 random bytes (the spec asks for 24 to 64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
