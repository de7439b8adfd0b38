"""Why a job waits, as its record keeps it (``defer``), and a failure as a record keeps it (``failure``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind
from tasks.states import DeferCause


@dataclass(frozen=True)
class Deferral:
    """Why a job waits, as recorded: the cause, the facts behind it, and when it runs again.

    ``delay`` is what the API asked for (clamped), ``attempt`` the call that
    failed (0 when no call was made), ``failure`` what went wrong, if anything
    did, ``paused_until`` the end of the endpoint's pause, ``turn`` and
    ``pace`` the job's turn at the endpoint's pace (calls per second).
    """

    cause: DeferCause
    until: float
    operation: Operation
    attempt: int = 0
    delay: float | None = None
    failure: Failure | None = None
    paused_until: float | None = None
    turn: float | None = None
    pace: float | None = None

    def describe(self) -> str:
        """Why the job waits, as a person reads it (Flower's RETRY, logs, ``payq job``)."""
        if self.cause is DeferCause.PAUSED:
            return f"{self.operation.value} endpoint paused until {_iso(self.paused_until or self.until)} after HTTP 429"
        if self.cause is DeferCause.PACED:
            return f"{self.operation.value} endpoint paced at {self.pace or 0:.3g} calls/s: its turn is at {_iso(self.turn or self.until)}"
        failure = self.failure.describe() if self.failure is not None else "failed"
        if self.cause is DeferCause.RETRY_AFTER:
            return f"{failure}; retry after {self.delay:g}s"
        return f"{failure}; backoff after attempt {self.attempt}"

    def to_json(self) -> str:
        """The record's ``defer`` field."""
        data = asdict(self)
        return json.dumps({k: v for k, v in data.items() if v is not None})

    @classmethod
    def from_json(cls, text: str) -> Deferral:
        """Read a ``defer`` field back."""
        data = json.loads(text)
        failure = data.pop("failure", None)
        return cls(
            cause=DeferCause(data.pop("cause")), operation=Operation(data.pop("operation")),
            failure=failure_from(failure), **data,
        )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_from(data: dict[str, Any] | None) -> Failure | None:
    """A :class:`Failure` from its stored JSON form, or None."""
    if not data:
        return None
    return Failure(FailureKind(data["kind"]), data.get("status"), data.get("error_type"), data.get("error_msg"), data.get("detail"))


def failure_json(failure: Failure) -> str:
    """A :class:`Failure` as stored in a record."""
    return json.dumps({k: v for k, v in asdict(failure).items() if v is not None})
