"""What the operator commands show of a job, built from its record: JSON-ready, times as UTC ISO 8601."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tasks.jobstore import Deferral, failure_from
from tasks.states import JobState


def iso(epoch: float | None) -> str | None:
    """``epoch`` as ``2026-11-27T13:00:00Z``, or None."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_view(job_id: str, record: dict[str, str], in_dead_letters: bool, deferrals: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What ``payq job`` shows for a job record.

    ``why`` says why a deferred job waits, or a dead one's dead-letter reason;
    ``last_outcome`` is the latest call's result as a person reads it;
    ``deferrals`` (when given) lists why the job waited before, oldest first.
    """
    state = JobState(record.get("state", JobState.QUEUED))
    result = json.loads(record["result"]) if "result" in record else None
    failure = failure_from(json.loads(record["failure"])) if "failure" in record else None
    deferral = Deferral.from_json(record["defer"]) if state is JobState.DEFERRED and "defer" in record else None

    def when(name: str) -> str | None:
        return iso(float(record[name])) if name in record else None

    why = None
    if deferral is not None:
        why = deferral.describe()
    elif state is JobState.DEAD:
        why = record.get("reason")
    if state is JobState.SUCCEEDED:
        last_outcome: str | None = "HTTP 200"
    else:
        last_outcome = failure.describe() if failure is not None else None
    view: dict[str, Any] = {
        "id": job_id,
        "operation": record.get("op"),
        "state": "dead-lettered" if state is JobState.DEAD else state.value,
        "deferred_until": when("deferred_until") if state is JobState.DEFERRED else None,
        "why": why,
        "dead_letter": in_dead_letters if state is JobState.DEAD else None,
        "attempts": int(record.get("attempts", 0)),
        "replays": int(record.get("replays", 0)),
        "last_outcome": last_outcome,
        "result": result,
        "report_job_id": result.get("reportJobId") if isinstance(result, dict) else None,
        "worker": record.get("worker"),
        "enqueued_at": when("enqueued_at"),
        "first_attempt_at": when("first_attempt_at"),
        "last_attempt_at": when("last_attempt_at"),
        "updated_at": when("updated_at"),
        "kwargs": json.loads(record["kwargs"]) if "kwargs" in record else None,
    }
    if deferrals is not None:
        view["deferrals"] = [
            {"at": iso(item.get("at")), "why": Deferral.from_json(json.dumps({k: v for k, v in item.items() if k != "at"})).describe()}
            for item in deferrals
        ]
    return view
