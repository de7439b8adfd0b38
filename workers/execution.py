"""What a worker does with one delivery of a job: begin it, call the API, carry out the decision.

Celery-free on purpose: :func:`execute` returns an :data:`Ending` and
:mod:`workers.payments` tells Celery (a result, RETRY, FAILURE or IGNORED). The
decisions themselves are :mod:`tasks.jobs.decide`'s; here they are only carried out,
in Redis, in this order: pause the endpoint, then record the success, defer or dead-letter the job.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from config.celery import OUTCOME_PATIENCE, STEPS_PATIENCE
from payapi import wire
from payapi.client import Prepared
from payapi.errors import InvalidRequest
from payapi.models import CaptureRequest, parse_request
from payapi.operations import OPERATIONS, Operation
from payapi.outcomes import Outcome, Success, status_of
from tasks import tracing
from tasks.jobs.admission import Admitted, bare_fields
from tasks.jobs.books import TripRuleViolation
from tasks.jobs.decide import (
    TURN_WAIT_IN_PLACE,
    Admit,
    DeadLetterJob,
    Decision,
    Defer,
    Settle,
    Skip,
    Succeed,
    decide,
    invalid_job,
    on_turn,
    start,
)
from tasks.jobs.deferral import Deferral
from tasks.jobs.resend import stored_differences
from tasks.notify import events
from tasks.pacing.fairness import HORIZON as FAIR_HORIZON
from tasks.pacing.pacer import Claim
from tasks.pacing.rules import lesson_at
from tasks.producer import prepare
from tasks.redis.patience import Patience
from tasks.states import Verdict
from tasks.store.deadletters import DeadLetter
from tasks.store.leases import needs_check, new_claim
from tasks.store.records import Call, conflicts
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
# held it and lost its lease); or, for a message that came around payq's doors, the job it was enqueued as.
Ending = Succeed | Deferral | DeadLetterJob | Skip | Admitted


def execute(rt: Runtime, job: Job, patience: Patience, recorded: str | None = None) -> Ending:
    """Run one delivery of ``job`` to its ending.

    Each Redis step waits out Redis (a restart, a failover) within the
    delivery's ``patience``; the claim and every outcome return only once the
    replicas in sync hold them (:meth:`~workers.runtime.Runtime.write`).
    A message whose kwargs are not the job's on record runs the job as
    recorded (``recorded``: those kwargs, as BEGIN gave them back).
    """
    now = rt.clock()
    try:
        request = parse_request(OPERATIONS[job.operation].request, job.kwargs)
    except InvalidRequest as exc:
        if not rt.step(patience, lambda: rt.jobs.recorded(job.job_id)):
            return _admit(rt, patience, job)  # a bare message: the producer's rules name its fields (a refund's key may be left out)
        return _dead_letter(rt, patience, job, invalid_job(str(exc)))
    pace = rt.step(patience, lambda: rt.pacer.pace(job.operation, now))
    store = str(job.kwargs.get("storeId", ""))
    claimed_at = rt.clock()  # before BEGIN: the lease it grants runs from a moment after this
    begin = rt.write(patience, lambda: rt.jobs.begin(
        job.job_id, job.operation, job.worker, now, job.delivery, rt.settings.lease_seconds, pace, TURN_WAIT_IN_PLACE,
        holder=rt.holdings.worker, claim=job.claim, store=store, fair_horizon=FAIR_HORIZON if rt.settings.fair_share else 0.0,
        weights=rt.store_weights, store_cap=rt.store_caps.get(store, 0.0),
        kwargs=recorded if recorded is not None else wire.job_json(job.kwargs)))
    if begin.verdict is Verdict.DIFFERS and begin.recorded is not None and recorded is None:
        return _as_recorded(rt, patience, job, begin.recorded)
    action = start(begin.verdict, begin.until, pace, rt.policy, rt.rng.random)
    if isinstance(action, Skip):
        return action
    if isinstance(action, Admit):
        return _admit(rt, patience, job)
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


def _as_recorded(rt: Runtime, patience: Patience, job: Job, recorded: str) -> Ending:
    """Run the job as its record says, not as a message under its id says (sent around payq's producer with a recorded job's id).

    The record's kwargs passed enqueue's rules (the trip's books, a conflicting
    resend refused); a message's did not. Written otherwise (the same fields,
    another spelling: key order, a Decimal's digits) it is the same job, and
    runs as recorded without a word.
    """
    differing = stored_differences(job.operation, job.job_id, recorded, job.kwargs)
    if differing:
        log.warning("%s %s: the message's kwargs differ from the job's on record (%s); the job runs as recorded",
                    job.operation.value, job.job_id, ", ".join(d.field for d in differing))
    return execute(rt, replace(job, kwargs=json.loads(recorded)), patience, recorded)


def _admit(rt: Runtime, patience: Patience, job: Job) -> Admitted | DeadLetterJob | Skip:
    """Enqueue a message that came around payq's doors (:mod:`tasks.jobs.admission`) as ``payq enqueue`` would, or dead-letter it.

    Validated by the producer's own :func:`~tasks.producer.prepare`, then
    recorded, checked against its trip's books and published by the enqueue
    script in one step, confirmed by the replicas in sync before the message
    is acknowledged. Refused (a field's rule, a trip's rule, another job under
    its id): a dead letter under the message's own id, ``invalid-job`` with the
    producer's wording, and nothing of the job written.
    """
    now = rt.clock()
    try:
        new = prepare(job.operation.value, bare_fields(job.operation, job.kwargs, job.job_id), now)
    except InvalidRequest as exc:
        return _dead_letter(rt, patience, job, invalid_job(str(exc)))
    kept = replace(job, kwargs=new.kwargs)  # as enqueue keeps them (a refund's key fixed): a replayed dead letter is the same job
    try:
        [enqueued] = rt.write(patience, lambda: rt.jobs.enqueue([new], now))
    except TripRuleViolation as exc:
        return _dead_letter(rt, patience, kept, invalid_job(str(exc)))
    conflict = conflicts([enqueued], in_batch=False)
    if conflict is not None:
        return _dead_letter(rt, patience, kept, invalid_job(str(conflict)))
    admitted = Admitted(new.job_id, enqueued.created)
    if new.job_id != job.job_id and rt.step(patience, lambda: rt.jobs.get(job.job_id)) is not None:
        # a replayed dead letter of such a message (queued under its own id by the replay): it ends here, naming its job
        # (a message sent under its natural id has just become the job it names: that record is the job's own)
        rt.write(patience, lambda: rt.jobs.succeed(job.job_id, admitted.result, now))
    log.info("%s %s: sent around payq's producer; enqueued as %s%s", job.operation.value, job.job_id, new.job_id,
             "" if enqueued.created else ", which was on record already: nothing new runs")
    return admitted


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
    sent_at = rt.clock()
    outcome = _send(rt, job, request, prepared, attempt)
    call = Call(job.operation, status_of(outcome), rt.clock(), sent_at)
    decision = decide(outcome, attempt, rt.policy, call.at, rt.rng.random)
    # the call is made: giving up now would make it again, so its outcome gets the same deadline, extended (the
    # heartbeat keeps the job's lease meanwhile, and nobody judges a lease while Redis is away)
    return carry_out(rt, patience.extended(OUTCOME_PATIENCE), job, request, decision, attempt, call, claimed=True)


def _send(rt: Runtime, job: Job, request: Any, prepared: Prepared, attempt: int) -> Outcome:
    """The API call: its own span when tracing is on, whose ``traceparent`` goes to the API with the request (signed with it)."""
    if not tracing.enabled():
        return rt.client.send(job.operation, request, prepared)
    attributes = {**tracing.job_attributes(job.job_id, job.operation.value, job.kwargs), tracing.ATTEMPT: attempt}
    with tracing.span(f"payq.api {job.operation.value}", tracing.Kind.CLIENT, attributes=attributes) as current:
        tracing.inject(prepared.headers)
        outcome = rt.client.send(job.operation, request, prepared)
        status = status_of(outcome)
        tracing.set_attributes(current, {tracing.OUTCOME: type(outcome).__name__, **({tracing.HTTP_STATUS: status} if status else {})})
        if not isinstance(outcome, Success):
            tracing.set_error(current, outcome.failure.kind.value)
        return outcome


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
            resume_at = decision.pause_until or now + 1.0
            sent_at = call.sent_at if call is not None else now
            lesson = rt.step(patience, lambda: rt.pacer.throttled(job.operation, now, resume_at))
            if lesson is not None:
                _learn_later(rt, job.operation, lesson, sent_at, retry_after, resume_at)
    if isinstance(decision, Succeed):
        if isinstance(request, CaptureRequest):
            settled = _settle_capture(rt, patience, job, request, int(now), now, call, claim, attempt)
            return Succeed(settled) if settled is not None else _lost(job)
        event = events.succeeded(job.job_id, job.operation, job.kwargs, decision.result, now) if _notifies(rt, job) else None
        recorded = rt.write(patience, lambda: rt.jobs.succeed(job.job_id, decision.result, now, call, event, claim, job.kwargs,
                                                              attempt))
        return decision if recorded else _lost(job)
    if isinstance(decision, Defer):
        deferral = Deferral(decision.cause, decision.until, job.operation, attempt, decision.delay, decision.failure,
                            decision.paused_until, decision.turn, decision.pace)
        with tracing.span("payq.defer", attributes={**tracing.job_attributes(job.job_id, job.operation.value, job.kwargs),
                                                    tracing.DEFER_CAUSE: deferral.cause.value,
                                                    tracing.DEFER_SECONDS: round(deferral.until - now, 3)}):
            deferred = rt.write(patience, lambda: rt.jobs.defer(job.job_id, deferral, now, call, release_attempt=released, claim=claim))
        return deferral if deferred else _lost(job)
    if (made := call) is not None:
        rt.step(patience, lambda: rt.jobs.count(made))
    return _dead_letter(rt, patience, job, decision, claim)


def _learn_later(rt: Runtime, operation: Operation, lesson: Claim, sent_at: float, retry_after: float | None, resume_at: float) -> None:
    """Learn from the 429 this delivery claimed the lesson of, once the calls in flight with it have landed (:func:`lesson_at`).

    On a thread of its own, so the job is deferred and its message acknowledged
    meanwhile. If this process ends first, nothing is learned and the pause
    alone holds (the next 429 teaches).
    """
    def learn() -> None:
        try:
            rt.step(rt.patience(STEPS_PATIENCE), lambda: rt.pacer.learn(operation, lesson, sent_at, retry_after, resume_at))
        except Exception:  # a thread's exception would only be printed: the pause alone holds
            log.exception("%s: could not learn the pace from its 429", operation.value)

    delay = max(0.0, lesson_at(sent_at, rt.clock(), resume_at, rt.settings.call_seconds) - rt.clock())
    timer = threading.Timer(delay, learn)
    timer.name, timer.daemon = f"payq-lesson-{operation.value}", True
    timer.start()


def _lost(job: Job) -> Skip:
    """The outcome was not written: another worker holds the job now (this one lost its lease while it called)."""
    log.warning("%s %s: lost its lease during the call; the outcome is left to the job's new holder", job.operation.value, job.job_id)
    return Skip(Verdict.HELD, lost=True)


def _settle_capture(
    rt: Runtime, patience: Patience, job: Job, request: CaptureRequest, settled_at: int, now: float, call: Call | None = None,
    claim: str = "", attempt: int = 0,
) -> dict[str, Any] | None:
    """Settle the capture and chain its payment-status report; None if the delivery's ``claim`` lost the job to another worker.

    The report's id derives from the settle time, and the first success's
    time is kept: a redelivery publishes the same report, which enqueue ignores.
    """
    amount = request.amount.model_dump()
    traceparent = tracing.current_traceparent()  # the report joins the capture's trace, as a child of this delivery
    while True:  # twice at most: the second time with the settle time on record
        report = prepare(Operation.FEEDBACK, {
            "storeId": request.storeId, "shoppingTripId": request.shoppingTripId,
            "totalAmount": amount, "settledAmount": amount, "paymentStatusTime": settled_at,
        })
        result = {"reportJobId": report.job_id, "settledAt": settled_at}
        event = events.succeeded(job.job_id, Operation.CAPTURE, job.kwargs, result, now) if rt.webhook else None
        on_record = rt.write(patience, partial(rt.jobs.finish_capture, job.job_id, settled_at, result, report, now, call, event, claim,
                                               job.kwargs, traceparent, attempt))
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
        kwargs=wire.exact(job.kwargs),  # a bare message's amounts may be Decimals: kept as their digits, as enqueue keeps them
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
