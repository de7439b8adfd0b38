"""Dead letters made the way a worker makes them: a real job record, then ``DeadLetterStore.add``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from payapi.operations import QUEUES, Operation
from payapi.outcomes import Failure, FailureKind
from tasks.producer import prepare
from tasks.states import DeadLetterReason
from tasks.store import lanes
from tasks.store.deadletters import DeadLetter
from tasks.store.records import NewJob
from tests.support.names import task_of
from workers.runtime import Runtime

_FIELDS: dict[str, dict[str, Any]] = {
    "capture": {"amount": {"amount": "12.34", "code": "USD"}},
    "cancel": {},
    "refund": {"amount": {"amount": "5.00", "code": "USD"}, "refundReasonCode": "DAMAGED_ITEM"},
    "feedback": {"totalAmount": {"amount": "1.00", "code": "USD"}, "settledAmount": {"amount": "1.00", "code": "USD"}},
}


@dataclass(frozen=True)
class Spec:
    """One dead letter to make; ``age`` is seconds since it was dead-lettered."""

    trip: str
    operation: str = "cancel"
    store: str = "s1"
    reason: str = "permanent"
    age: float = 0.0
    status: int | None = 400
    error_type: str = "BadRequestException"
    attempts: int = 1

    def failure(self) -> Failure:
        """The failure a worker would have recorded for this reason and status."""
        kind = {
            "permanent": FailureKind.REFUSED, "feedback-rejected": FailureKind.REJECTED, "invalid-job": FailureKind.INVALID_JOB,
            "internal-error": FailureKind.INTERNAL,
        }.get(self.reason, FailureKind.SERVER_ERROR)
        return Failure(kind, self.status, self.error_type)


def notification(spec: Spec) -> NewJob:
    """An outcome notification about the capture of ``spec``'s trip (``notify`` is payq's own job: ``prepare`` does not make it)."""
    about = f"capture:{spec.store}:{spec.trip}"
    kwargs = {"id": f"evt-{spec.trip}", "type": "job.dead_lettered", "timestamp": "2026-12-01T10:00:00Z",
              "data": {"jobId": about, "operation": "capture", "storeId": spec.store, "shoppingTripId": spec.trip, "state": "dead-lettered"}}
    return NewJob(Operation.NOTIFY, f"notify:evt-{spec.trip}", kwargs)


def seed(settings: Settings, specs: list[Spec], now: float | None = None) -> list[DeadLetter]:
    """Enqueue each job (its record, its idempotency key), take it off its queue as a worker would, dead-letter it.

    Empties the four queues on the way: seed before enqueueing anything else.
    """
    rt = Runtime.build(settings)
    now = now if now is not None else time.time()
    jobs = [notification(s) if s.operation == "notify" else
            prepare(s.operation, {"storeId": s.store, "shoppingTripId": s.trip, **_FIELDS[s.operation]}, now=now) for s in specs]
    # a notification is no Celery job (the outbox delivers it): only payment jobs have records to enqueue
    rt.jobs.enqueue([j for j in jobs if j.operation is not Operation.NOTIFY], now=now - max((s.age for s in specs), default=0) - 1)
    rt.redis.delete(*lanes.every_key(rt.redis, QUEUES))
    entries = []
    for spec, job in zip(specs, jobs, strict=True):
        entry = DeadLetter.of(
            spec.failure(), id=job.job_id, operation=job.operation,
            task="outbox" if job.operation is Operation.NOTIFY else task_of(job.operation), kwargs=job.kwargs,
            reason=DeadLetterReason(spec.reason), attempts=spec.attempts,
            first_attempt_at=now - spec.age - 1, last_attempt_at=now - spec.age, dead_at=now - spec.age, worker="w-test@host",
        )
        rt.dead_letters.add(entry)
        entries.append(entry)
    rt.redis.close()
    return entries
