"""What a worker does with one job, from its kwargs to its outcome.

Celery-free on purpose: the tasks in :mod:`tasks.payments` translate the two
exceptions raised here (``Deferred`` → RETRY, ``DeadLettered`` → FAILURE) and
a ``None`` return (a stale duplicate delivery → IGNORED).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, NoReturn

from payapi.errors import DeadLettered, Deferred, InvalidRequest
from payapi.models import CaptureRequest, FeedbackResponse, RefundResponse, parse_request
from payapi.outcomes import Operation, Outcome, Permanent, RetryAfter, Success, Transient
from tasks.messages import TASK_NAMES
from tasks.producer import MODELS, prepare
from tasks.retry import compute_backoff, retry_after_due
from workers.deadletters import DeadLetter
from workers.runtime import Runtime

log = logging.getLogger("payq.jobs")


def execute(
    rt: Runtime, operation: Operation, job_id: str, kwargs: dict[str, Any], worker: str, delivery: str,
) -> dict[str, Any] | None:
    """Run one delivery (``delivery`` is its message's tag) of a job; returns its result, or None if it had nothing to do."""
    now = time.time()
    try:
        request = parse_request(MODELS[operation], kwargs)
    except InvalidRequest as exc:
        # only a message published around the producer can get here
        _dead_letter(rt, operation, job_id, kwargs, worker, "invalid-job", str(exc), None)
    # a claim outlasts the longest a delivery may run: after that, its worker is gone
    begin = rt.jobs.begin(job_id, operation, kwargs, worker, now, delivery, rt.settings.task_time_limit + 5)
    if begin.verdict == "busy":
        log.info("%s %s: delivered again while another delivery runs it; nothing to do", operation, job_id)
        return None
    if begin.verdict in ("succeeded", "dead", "deferred"):
        log.info("%s %s: delivered again but already %s; nothing to do", operation, job_id, begin.verdict)
        return None
    if begin.verdict == "settled":
        assert isinstance(request, CaptureRequest) and begin.until is not None
        return _after_capture(rt, job_id, request, int(begin.until), now)
    if begin.verdict == "paused":
        assert begin.until is not None
        due = retry_after_due(begin.until, 0.0, rt.settings.retry_after_jitter, rt.rng.random)
        reason = f"{operation} endpoint paused until {_iso(begin.until)} after HTTP 429"
        _defer(rt, job_id, due, reason, None, now)
    outcome = rt.client.call(operation, request)
    return _apply(rt, operation, job_id, kwargs, request, outcome, begin.attempts, worker)


def _apply(
    rt: Runtime, operation: Operation, job_id: str, kwargs: dict[str, Any], request: Any,
    outcome: Outcome, attempts: int, worker: str,
) -> dict[str, Any]:
    now = time.time()
    settings = rt.settings
    if isinstance(outcome, Success):
        if isinstance(request, CaptureRequest):
            return _after_capture(rt, job_id, request, int(now), now)
        result: dict[str, Any] = {}
        if isinstance(outcome.body, RefundResponse):
            result = {"reconciliationId": outcome.body.reconciliationId}
        elif isinstance(outcome.body, FeedbackResponse):
            result = {"status": outcome.body.status, "reasonCode": outcome.body.reasonCode}
            if outcome.body.status == "Rejected":
                _dead_letter(rt, operation, job_id, kwargs, worker, "feedback-rejected",
                             f"Rejected: {outcome.body.reasonCode or 'no reasonCode'}", 200)
        rt.jobs.succeed(job_id, "HTTP 200", result, now)
        return result
    if isinstance(outcome, Permanent):
        if not outcome.error_msg or outcome.error_msg in outcome.reason:
            error = outcome.reason
        elif outcome.reason in outcome.error_msg:
            error = outcome.error_msg  # "UnknownShoppingTrip: no shopping trip …" already names its type
        else:
            error = f"{outcome.reason}: {outcome.error_msg}"
        _dead_letter(rt, operation, job_id, kwargs, worker, "permanent", error, outcome.status)
    if isinstance(outcome, RetryAfter) and outcome.status == 429:
        # every worker stops calling this endpoint until the API's pause is over
        rt.jobs.pause(operation, now + outcome.seconds, now)
    if attempts >= settings.max_attempts:
        _dead_letter(rt, operation, job_id, kwargs, worker, "retries-exhausted",
                     f"after {attempts} attempts, last: {outcome.reason}", outcome.status)
    if isinstance(outcome, RetryAfter):
        due = retry_after_due(now, outcome.seconds, settings.retry_after_jitter, rt.rng.random)
        reason = f"{outcome.reason}; retry after {outcome.seconds:g}s"
    else:
        assert isinstance(outcome, Transient)
        due = now + compute_backoff(attempts, settings.backoff_base, settings.backoff_cap, rt.rng.random)
        reason = f"{outcome.reason}; backoff after attempt {attempts}"
    _defer(rt, job_id, due, reason, outcome.reason, now)


def _after_capture(rt: Runtime, job_id: str, request: CaptureRequest, settled_at: int, now: float) -> dict[str, Any]:
    """Settle the capture and chain its payment-status report.

    The report's id derives from the settle time, and the first success's
    time is kept: a redelivery publishes the same report, which enqueue ignores.
    """
    amount = request.amount.model_dump()
    while True:  # twice at most: the second time with the settle time on record
        report = prepare("feedback", {
            "storeId": request.storeId, "shoppingTripId": request.shoppingTripId,
            "totalAmount": amount, "settledAmount": amount, "paymentStatusTime": settled_at,
        })
        result = {"reportJobId": report.job_id, "settledAt": settled_at}
        on_record = rt.jobs.finish_capture(job_id, settled_at, result, report, now)
        if on_record == settled_at:
            return result
        settled_at = on_record


def _defer(rt: Runtime, job_id: str, due: float, reason: str, outcome: str | None, now: float) -> NoReturn:
    rt.jobs.defer(job_id, due, reason, outcome, now)
    raise Deferred(reason, due)


def _dead_letter(
    rt: Runtime, operation: Operation, job_id: str, kwargs: dict[str, Any], worker: str,
    reason: str, error: str, status: int | None,
) -> NoReturn:
    record = rt.jobs.get(job_id) or {}
    now = time.time()
    rt.dead_letters.add(DeadLetter(
        id=job_id,
        operation=operation,
        task=TASK_NAMES[operation],
        kwargs=kwargs,
        reason=reason,
        status=status,
        error=error,
        attempts=int(record.get("attempts", 0)),
        first_attempt_at=float(record["first_attempt_at"]) if "first_attempt_at" in record else None,
        last_attempt_at=float(record["last_attempt_at"]) if "last_attempt_at" in record else None,
        dead_at=now,
        worker=worker,
    ))
    log.warning("%s %s dead-lettered: %s: %s", operation, job_id, reason, error)
    raise DeadLettered(reason, error, status)


def dead_letter_internal_error(rt: Runtime, operation: Operation, job_id: str, kwargs: dict[str, Any], worker: str, exc: BaseException) -> NoReturn:
    """Dead-letter a job whose handling raised something unforeseen, so it is kept for an operator, not dropped."""
    _dead_letter(rt, operation, job_id, kwargs, worker, "internal-error", f"{type(exc).__name__}: {exc}"[:500], None)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
