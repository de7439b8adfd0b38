"""What a worker does with one delivery of a job: begin it, call the API, carry out the decision.

Celery-free on purpose: :func:`execute` returns an :data:`Ending` and
:mod:`tasks.payments` tells Celery (a result, RETRY, FAILURE or IGNORED). The
decisions themselves are :mod:`tasks.decide`'s; here they are only carried out,
in Redis, in this order: pause the endpoint, then park or bury the job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from payapi.errors import InvalidRequest
from payapi.models import CaptureRequest, parse_request
from payapi.operations import OPERATIONS, Operation
from payapi.outcomes import Failure, FailureKind, status_of
from tasks import notify
from tasks.deadletters import DeadLetter
from tasks.decide import DeadLetterJob, Decision, Defer, Succeed, decide, wait_for_turn, wait_out_pause
from tasks.jobstore import Call, Deferral
from tasks.pace import TURN_LATE, TURN_LEAD, TURN_WAIT_IN_PLACE
from tasks.producer import prepare
from tasks.runtime import Runtime
from tasks.states import DeadLetterReason, Verdict

log = logging.getLogger("payq.jobs")


@dataclass(frozen=True)
class Job:
    """One delivery of a job: what it is, and who runs it (``delivery`` is its message's tag)."""

    operation: Operation
    job_id: str
    kwargs: dict[str, Any]
    worker: str
    delivery: str


@dataclass(frozen=True)
class Finished:
    """The job succeeded; ``result`` is what its record keeps."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Parked:
    """The job waits in the deferred set, as ``deferral`` says."""

    deferral: Deferral


@dataclass(frozen=True)
class Buried:
    """The job is in the dead-letter store with ``reason``."""

    reason: DeadLetterReason
    failure: Failure


@dataclass(frozen=True)
class Skipped:
    """A delivery with nothing to do: the job is finished, parked, or run by another delivery (``verdict``)."""

    verdict: Verdict


Ending = Finished | Parked | Buried | Skipped


def execute(rt: Runtime, job: Job) -> Ending:
    """Run one delivery of ``job`` to its ending."""
    now = time.time()
    try:
        request = parse_request(OPERATIONS[job.operation].request, job.kwargs)
    except InvalidRequest as exc:  # only a message published around the producer gets here
        failure = Failure(FailureKind.INVALID_JOB, detail=str(exc)[:500])
        return _bury(rt, job, DeadLetterJob(DeadLetterReason.INVALID_JOB, failure))
    pace = rt.pacer.pace(job.operation, now)
    # a claim outlasts the longest a delivery may run: after that, its worker is gone
    begin = rt.jobs.begin(job.job_id, job.operation, job.kwargs, job.worker, now, job.delivery, rt.settings.task_time_limit + 5,
                          pace, TURN_WAIT_IN_PLACE)
    if begin.verdict is Verdict.SETTLED:
        assert isinstance(request, CaptureRequest) and begin.until is not None
        return Finished(_settle_capture(rt, job.job_id, request, int(begin.until), now))
    if begin.verdict is Verdict.PAUSED:
        assert begin.until is not None
        return carry_out(rt, job, request, wait_out_pause(begin.until, rt.policy, rt.rng.random), 0)
    if begin.verdict is Verdict.PACED:
        assert begin.until is not None and pace is not None
        return carry_out(rt, job, request, wait_for_turn(begin.until, pace, TURN_LEAD), 0)
    if begin.verdict is not Verdict.RUN:
        return Skipped(begin.verdict)
    prepared = rt.client.prepare(job.operation, request)  # before the wait: on the turn, only the sending is left
    if begin.until is not None and (wait := begin.until - time.time()) > 0:
        time.sleep(min(wait, TURN_WAIT_IN_PLACE))  # the job's turn at the endpoint's pace: close enough to wait for here
    if pace is not None and begin.until is not None and time.time() - begin.until > TURN_LATE:
        # too late for this turn: calling now could crowd the turns after it; no call, the attempt is given back
        return carry_out(rt, job, request, wait_for_turn(time.time(), pace, 0.0), begin.attempts - 1, released=True)
    outcome = rt.client.send(job.operation, request, prepared)
    call = Call(job.operation, status_of(outcome), time.time())
    decision = decide(outcome, begin.attempts, rt.policy, call.at, rt.rng.random)
    return carry_out(rt, job, request, decision, begin.attempts, call)


def carry_out(
    rt: Runtime, job: Job, request: Any, decision: Decision, attempt: int, call: Call | None = None, *, released: bool = False,
) -> Ending:
    """Write ``decision`` to Redis: pause the endpoint and learn its pace if asked, then record the success, park or bury the job.

    ``call``, the API call the decision is about, is counted in the same step
    as the outcome (it feeds ``payq_api_calls_total`` and the pace's measure).
    ``released``: the attempt BEGIN claimed was not used (a lost turn) and is given back as the job is parked.
    """
    now = time.time()
    if not isinstance(decision, Succeed):
        if decision.pause_until is not None:
            # every worker stops calling this endpoint until the API's pause is over
            rt.jobs.pause(job.operation, decision.pause_until, now)
        if decision.throttled:
            # the delay, as clamped, is what the next probe above the learned pace risks
            retry_after = decision.pause_until - now if decision.pause_until is not None else None
            rt.pacer.throttled(job.operation, now, retry_after, decision.pause_until or now + 1.0)
    if isinstance(decision, Succeed):
        if isinstance(request, CaptureRequest):
            return Finished(_settle_capture(rt, job.job_id, request, int(now), now, call))
        event = notify.succeeded(job.job_id, job.operation, job.kwargs, decision.result, now) if _notifies(rt, job) else None
        rt.jobs.succeed(job.job_id, decision.result, now, call, event)
        return Finished(decision.result)
    if isinstance(decision, Defer):
        deferral = Deferral(decision.cause, decision.until, job.operation, attempt, decision.delay, decision.failure,
                            decision.paused_until, decision.turn, decision.pace)
        rt.jobs.defer(job.job_id, deferral, now, call, release_attempt=released)
        return Parked(deferral)
    if call is not None:
        rt.jobs.count(call)
    return _bury(rt, job, decision)


def _settle_capture(
    rt: Runtime, job_id: str, request: CaptureRequest, settled_at: int, now: float, call: Call | None = None,
) -> dict[str, Any]:
    """Settle the capture and chain its payment-status report.

    The report's id derives from the settle time, and the first success's
    time is kept: a redelivery publishes the same report, which enqueue ignores.
    """
    amount = request.amount.model_dump()
    while True:  # twice at most: the second time with the settle time on record
        report = prepare(Operation.FEEDBACK, {
            "storeId": request.storeId, "shoppingTripId": request.shoppingTripId,
            "totalAmount": amount, "settledAmount": amount, "paymentStatusTime": settled_at,
        })
        result = {"reportJobId": report.job_id, "settledAt": settled_at}
        event = notify.succeeded(job_id, Operation.CAPTURE, request.model_dump(mode="json"), result, now) if rt.notifier else None
        on_record = rt.jobs.finish_capture(job_id, settled_at, result, report, now, call, event)
        if on_record == settled_at:
            return result
        settled_at = on_record


def _bury(rt: Runtime, job: Job, decision: DeadLetterJob) -> Buried:
    """Write the dead letter (before the message is acknowledged) and log it."""
    record = rt.jobs.get(job.job_id) or {}
    dead_at = time.time()
    event = None
    if _notifies(rt, job):
        event = notify.dead_lettered(job.job_id, job.operation, job.kwargs, decision.reason, decision.failure,
                                     int(record.get("replays", 0)), dead_at)
    rt.dead_letters.add(DeadLetter.of(
        decision.failure,
        id=job.job_id,
        operation=job.operation,
        task=OPERATIONS[job.operation].task,
        kwargs=job.kwargs,
        reason=decision.reason,
        attempts=int(record.get("attempts", 0)),
        first_attempt_at=float(record["first_attempt_at"]) if "first_attempt_at" in record else None,
        last_attempt_at=float(record["last_attempt_at"]) if "last_attempt_at" in record else None,
        dead_at=dead_at,
        worker=job.worker,
    ), event)
    log.warning("%s %s dead-lettered: %s: %s", job.operation.value, job.job_id, decision.reason.value, decision.failure.describe())
    return Buried(decision.reason, decision.failure)


def _notifies(rt: Runtime, job: Job) -> bool:
    """Whether the job's outcome makes a notification: notifications are on."""
    return rt.notifier is not None


def bury_internal_error(rt: Runtime, job: Job, exc: BaseException) -> Buried:
    """Dead-letter a job whose handling raised something unforeseen, so it is kept for an operator, not dropped."""
    failure = Failure(FailureKind.INTERNAL, error_type=type(exc).__name__, detail=str(exc)[:500])
    return _bury(rt, job, DeadLetterJob(DeadLetterReason.INTERNAL_ERROR, failure))
