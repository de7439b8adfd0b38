"""The four Celery tasks. Their kwargs are the wire fields, so Flower shows storeId and shoppingTripId."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import task_retry

from payapi.errors import DeadLettered, Deferred
from payapi.outcomes import Operation
from tasks.execution import dead_letter_internal_error, execute
from tasks.messages import TASK_NAMES
from workers.runtime import RuntimeHolder

log = logging.getLogger("payq.jobs")


def run(task: Task, holder: RuntimeHolder, operation: Operation, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Execute one delivery and translate payq's outcome into Celery's task states."""
    job_id: str = task.request.id
    worker: str = task.request.hostname or "unknown"
    # kombu keeps a message's tag when it puts the same message back; a copy published again has a new one
    delivery: str = (task.request.properties or {}).get("delivery_tag") or ""
    rt = holder.get()
    try:
        result = execute(rt, operation, job_id, kwargs, worker, delivery)
    except Deferred as exc:
        # The job is already parked in payq's deferred set; raising Retry
        # without self.retry() publishes nothing and shows RETRY in Flower.
        raise Retry(message=exc.reason, exc=exc, when=exc.until) from None
    except DeadLettered:
        raise
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Redis is where the job's state lives: hand the message back rather
        # than acknowledge a job whose outcome could not be recorded.
        log.warning("%s %s: Redis unavailable (%s); message requeued", operation, job_id, exc)
        raise Reject(str(exc), requeue=True) from None
    except Exception as exc:
        log.exception("%s %s: unexpected error", operation, job_id)
        dead_letter_internal_error(rt, operation, job_id, kwargs, worker, exc)
    if result is None:
        raise Ignore()
    return result


def _drop_deferred_traceback(reason: object = None, **_: object) -> None:
    """Let a deferral's ``Retry`` go without its traceback, so the worker frees it at once.

    Celery keeps the raised ``Retry`` in locals of the frame that caught it,
    and the tracebacks of the ``Retry`` and of the ``Deferred`` inside it lead
    back to that frame (the latter through ``f_back``): a reference cycle that
    only the cyclic GC frees. Each cycle also holds billiard's copy of the
    traceback (every frame's code positions, ~200 KB), and the copying itself
    triggers so many young collections that the cycle is soon in the oldest
    generation, which is collected rarely: 1,000 deferrals grew a worker by
    ~60 MB. A deferral is control flow, not an error; its traceback says nothing.
    """
    if isinstance(reason, Retry) and isinstance(reason.exc, Deferred):
        reason.__traceback__ = None
        reason.exc.__traceback__ = None


def register(app: Celery, holder: RuntimeHolder) -> dict[Operation, Task]:
    """Define the payment tasks on ``app``."""
    task_retry.connect(_drop_deferred_traceback, weak=False, dispatch_uid="payq-drop-deferred-traceback")

    @app.task(name=TASK_NAMES["capture"], bind=True, throws=(DeadLettered,))
    def capture(self: Task, *, storeId: str, shoppingTripId: str, amount: dict[str, str]) -> dict[str, Any]:
        """Capture a trip's cart total, then chain its payment-status report."""
        return run(self, holder, "capture", {"storeId": storeId, "shoppingTripId": shoppingTripId, "amount": amount})

    @app.task(name=TASK_NAMES["cancel"], bind=True, throws=(DeadLettered,))
    def cancel(self: Task, *, storeId: str, shoppingTripId: str) -> dict[str, Any]:
        """Cancel an empty cart's pre-authorisation."""
        return run(self, holder, "cancel", {"storeId": storeId, "shoppingTripId": shoppingTripId})

    @app.task(name=TASK_NAMES["refund"], bind=True, throws=(DeadLettered,))
    def refund(
        self: Task, *, storeId: str, shoppingTripId: str, amount: dict[str, str], refundRequestId: str, refundReasonCode: str,
    ) -> dict[str, Any]:
        """Refund part or all of a captured trip (idempotent by refundRequestId)."""
        return run(self, holder, "refund", {
            "storeId": storeId, "shoppingTripId": shoppingTripId, "amount": amount,
            "refundRequestId": refundRequestId, "refundReasonCode": refundReasonCode,
        })

    @app.task(name=TASK_NAMES["feedback"], bind=True, throws=(DeadLettered,))
    def report_payment_status(
        self: Task, *, storeId: str, shoppingTripId: str, totalAmount: dict[str, str], settledAmount: dict[str, str],
        paymentStatusTime: int,
    ) -> dict[str, Any]:
        """Report a trip's payment status to fraud and abuse."""
        return run(self, holder, "feedback", {
            "storeId": storeId, "shoppingTripId": shoppingTripId, "totalAmount": totalAmount,
            "settledAmount": settledAmount, "paymentStatusTime": paymentStatusTime,
        })

    return {"capture": capture, "cancel": cancel, "refund": refund, "feedback": report_payment_status}
