"""What a worker does with one delivery of a job: begin it, call the API, carry out the decision.

Celery-free on purpose: :func:`execute` returns an :data:`Ending` and
:mod:`workers.payments` tells Celery (a result, RETRY, FAILURE or IGNORED). The
decisions themselves are :mod:`tasks.jobs.decide`'s; here they are only carried out,
in Redis, in this order: pause the endpoint, then record the success, defer or dead-letter the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from config.celery import OUTCOME_PATIENCE
from payapi.errors import InvalidRequest
from payapi.models import CaptureRequest, parse_request
from payapi.operations import OPERATIONS, Operation
from payapi.outcomes import status_of
from tasks.jobs.decide import TURN_WAIT_IN_PLACE, DeadLetterJob, Decision, Defer, Settle, Skip, Succeed, decide, invalid_job, on_turn, start
from tasks.jobs.deferral import Deferral
from tasks.notify import events
from tasks.producer import prepare
from tasks.redis.patience import Patience
from tasks.states import Verdict
from tasks.store.deadletters import DeadLetter
from tasks.store.leases import needs_check, new_claim
from tasks.store.records import Call
from workers.runtime import Runtime

log = logging.getLogger("payq.jobs")


@dataclass(frozen=True)
class Job:
    """One delivery of a job: what it is, and who runs it (``delivery`` is its message's tag; ``claim`` is unique to the delivery)."""

    operation: Operation
    job_id: str
    kwargs: dict[str, Any]
    worker: str
    delivery: str
    claim: str = field(default_factory=new_claim)


# What a delivery ends with: the decision it carried out. A success with the result its record keeps;
# the deferral as recorded (the job waits in the deferred set); the dead letter as written; or
# nothing to do (the job is settled, waits, or another worker holds it; ``lost``: this delivery
# held it and lost its lease).
Ending = Succeed | Deferral | DeadLetterJob | Skip


def execute(rt: Runtime, job: Job, patience: Patience) -> Ending:
    """Run one delivery of ``job`` to its ending.

    Each Redis step waits out Redis (a restart, a failover) within the
    delivery's ``patience``; the claim and every outcome return only once the
    replicas in sync hold them (:meth:`~workers.runtime.Runtime.write`).
    """
    now = rt.clock()
    try:
        request = parse_request(OPERATIONS[job.operation].request, job.kwargs)
    except InvalidRequest as exc:
        return _dead_letter(rt, patience, job, invalid_job(str(exc)))
    pace = rt.step(patience, lambda: rt.pacer.pace(job.operation, now))
    claimed_at = rt.clock()  # before BEGIN: the lease it grants runs from a moment after this
    begin = rt.write(patience, lambda: rt.jobs.begin(
        job.job_id, job.operation, job.kwargs, job.worker, now, job.delivery, rt.settings.lease_seconds, pace, TURN_WAIT_IN_PLACE,
        holder=rt.holdings.worker, claim=job.claim))
    action = start(begin.verdict, begin.until, pace, rt.policy, rt.rng.random)
    if isinstance(action, Skip):
        return action
    if isinstance(action, Settle):
        assert isinstance(request, CaptureRequest)
        settled = _settle_capture(rt, patience, job, request, action.settled_at, now)
        return Succeed(settled) if settled is not None else Skip(Verdict.HELD)
    if isinstance(action, Defer):
        return carry_out(rt, patience, job, request, action, 0)
    rt.holdings.hold(job.job_id, job.claim)  # from here the heartbeat renews the job's lease
    try:
        return _call(rt, patience, job, request, begin.attempts, action.turn, pace, claimed_at)
    finally:
        rt.holdings.release(job.job_id, job.claim)


def _call(rt: Runtime, patience: Patience, job: Job, request: Any, attempt: int, turn: float | None, pace: float | None,
          claimed_at: float) -> Ending:
    """Call the API for a job this delivery holds (at its ``turn``, if paced), and carry out the decision."""
    prepared = rt.client.prepare(job.operation, request)  # before the wait: on the turn, only the sending is left
    if turn is not None and (wait := turn - rt.clock()) > 0:
        rt.sleep(min(wait, TURN_WAIT_IN_PLACE))  # the job's turn at the endpoint's pace: close enough to wait for here
    late = on_turn(turn, pace, rt.clock())
    if late is not None:
        return carry_out(rt, patience, job, request, late, attempt - 1, released=True, claimed=True)
    if needs_check(rt.clock() - claimed_at, rt.settings.lease_seconds) and not rt.step(patience, lambda: rt.leases.renew(job.job_id, job.claim)):
        # this worker was paused or cut off past its lease and the job went to another: that one calls
        log.warning("%s %s: lost its lease while it waited; no call", job.operation.value, job.job_id)
        return Skip(Verdict.HELD, lost=True)
    outcome = rt.client.send(job.operation, request, prepared)
    call = Call(job.operation, status_of(outcome), rt.clock())
    decision = decide(outcome, attempt, rt.policy, call.at, rt.rng.random)
    # the call is made: giving up now would make it again, so its outcome gets the same deadline, extended (the
    # heartbeat keeps the job's lease meanwhile, and nobody judges a lease while Redis is away)
    return carry_out(rt, patience.extended(OUTCOME_PATIENCE), job, request, decision, attempt, call, claimed=True)


def carry_out(
    rt: Runtime, patience: Patience, job: Job, request: Any, decision: Decision, attempt: int, call: Call | None = None, *,
    released: bool = False, claimed: bool = False,
) -> Ending:
    """Write ``decision`` to Redis: pause the endpoint and learn its pace if asked, then record the success, defer or dead-letter the job.

    ``call``, the API call the decision is about, is counted in the same step
    as the outcome (it feeds ``payq_api_calls_total`` and the pace's measure).
    ``released``: the attempt BEGIN claimed was not used (a lost turn) and is given back as the job is deferred.
    ``claimed``: this delivery holds the job (BEGIN said ``run``); the outcome is
    written only while its claim stands, and is a ``lost`` :class:`~tasks.jobs.decide.Skip` otherwise.
    """
    now = rt.clock()
    claim = job.claim if claimed else ""
    if not isinstance(decision, Succeed):
        if decision.pause_until is not None:
            # every worker stops calling this endpoint until the API's pause is over
            rt.step(patience, lambda: rt.pacer.pause(job.operation, decision.pause_until or now, now))
        if decision.throttled:
            # the delay, as clamped, is what the next probe above the learned pace risks
            retry_after = decision.pause_until - now if decision.pause_until is not None else None
            rt.step(patience, lambda: rt.pacer.throttled(job.operation, now, retry_after, decision.pause_until or now + 1.0))
    if isinstance(decision, Succeed):
        if isinstance(request, CaptureRequest):
            settled = _settle_capture(rt, patience, job, request, int(now), now, call, claim)
            return Succeed(settled) if settled is not None else _lost(job)
        event = events.succeeded(job.job_id, job.operation, job.kwargs, decision.result, now) if _notifies(rt, job) else None
        recorded = rt.write(patience, lambda: rt.jobs.succeed(job.job_id, decision.result, now, call, event, claim, job.kwargs))
        return decision if recorded else _lost(job)
    if isinstance(decision, Defer):
        deferral = Deferral(decision.cause, decision.until, job.operation, attempt, decision.delay, decision.failure,
                            decision.paused_until, decision.turn, decision.pace)
        deferred = rt.write(patience, lambda: rt.jobs.defer(job.job_id, deferral, now, call, release_attempt=released, claim=claim))
        return deferral if deferred else _lost(job)
    if (made := call) is not None:
        rt.step(patience, lambda: rt.jobs.count(made))
    return _dead_letter(rt, patience, job, decision, claim)


def _lost(job: Job) -> Skip:
    """The outcome was not written: another worker holds the job now (this one lost its lease while it called)."""
    log.warning("%s %s: lost its lease during the call; the outcome is left to the job's new holder", job.operation.value, job.job_id)
    return Skip(Verdict.HELD, lost=True)


def _settle_capture(
    rt: Runtime, patience: Patience, job: Job, request: CaptureRequest, settled_at: int, now: float, call: Call | None = None,
    claim: str = "",
) -> dict[str, Any] | None:
    """Settle the capture and chain its payment-status report; None if the delivery's ``claim`` lost the job to another worker.

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
        event = events.succeeded(job.job_id, Operation.CAPTURE, request.model_dump(mode="json"), result, now) if rt.webhook else None
        on_record = rt.write(patience, partial(rt.jobs.finish_capture, job.job_id, settled_at, result, report, now, call, event, claim,
                                               job.kwargs))
        if on_record is None or on_record == settled_at:
            return result if on_record is not None else None
        settled_at = on_record


def _dead_letter(rt: Runtime, patience: Patience, job: Job, decision: DeadLetterJob, claim: str = "") -> DeadLetterJob | Skip:
    """Write the dead letter (before the message is acknowledged) and log it; a ``lost`` :class:`~tasks.jobs.decide.Skip` if ``claim`` lost the job."""
    record = rt.step(patience, lambda: rt.jobs.get(job.job_id)) or {}
    dead_at = rt.clock()
    event = None
    if _notifies(rt, job):
        event = events.dead_lettered(job.job_id, job.operation, job.kwargs, decision.reason, decision.failure,
                                     int(record.get("replays", 0)), dead_at)
    entry = DeadLetter.of(
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
    )
    if not rt.write(patience, lambda: rt.dead_letters.add(entry, event, claim)):
        return _lost(job)
    log.warning("%s %s dead-lettered: %s: %s", job.operation.value, job.job_id, decision.reason.value, decision.failure.describe())
    return decision


def _notifies(rt: Runtime, job: Job) -> bool:
    """Whether the job's outcome makes a notification: notifications are on."""
    return rt.webhook is not None


def dead_letter(rt: Runtime, patience: Patience, job: Job, decision: DeadLetterJob) -> DeadLetterJob | Skip:
    """Dead-letter ``job`` as ``decision`` says (a delivery whose handling raised: :func:`tasks.jobs.decide.on_error`).

    Under this delivery's claim if it holds the job, else only if nobody does.
    """
    held = (rt.step(patience, lambda: rt.jobs.get(job.job_id)) or {}).get("claim") == job.claim
    return _dead_letter(rt, patience, job, decision, job.claim if held else "")
