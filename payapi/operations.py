"""payq's operations in one table: everything else reads it.

A row says how an operation is called (path, request and response models),
how payq runs it as a job (Celery task name, queue) and how a job's id is made
from its natural key. Adding an operation is one row here and its models.
The rows are the payment API's operations. ``notify``, payq's own delivery
of an outcome notification to a store backend, is an :class:`Operation` (its
dead letters and its receiver's pause are named by it) but no row: events
travel in the outbox stream (``tasks/notify/outbox.py``), not as Celery jobs.

The names are a contract: task names and queues are what Flower and
operators see, paths are the API's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from payapi.errors import FieldProblem, InvalidRequest
from payapi.models import (
    CancelRequest,
    CaptureRequest,
    FeedbackRequest,
    FeedbackResponse,
    RefundRequest,
    RefundResponse,
    RequestModel,
    ResponseModel,
)


class Operation(StrEnum):
    """A payment API operation; the value is payq's short name for it (job ids, pauses, metrics labels)."""

    CAPTURE = "capture"
    CANCEL = "cancel"
    REFUND = "refund"
    FEEDBACK = "feedback"
    NOTIFY = "notify"  # not the payment API's, nor a job: an outcome notification to a store backend (the outbox)


@dataclass(frozen=True)
class OperationSpec:
    """One row of the table.

    ``key_fields`` are the wire fields that identify a job: its id is the
    operation and their values joined by ``:`` (no key field can contain a
    ``:``, their patterns exclude it), so the same job enqueued twice is one
    job and an operator can read a trip's jobs by eye. ``defaults`` fix a
    missing key field at enqueue, once: every retry and replay reuses it.
    """

    operation: Operation
    path: str | None  # None: not a call to the payment API (no row has none today)
    request: type[RequestModel]
    response: type[ResponseModel] | None  # None: an empty 200 is the answer, anything in it is ignored
    task: str
    queue: str
    key_fields: tuple[str, ...]
    summary: str
    defaults: Mapping[str, Callable[[float], Any]] = field(default_factory=dict)

    def job_id(self, kwargs: Mapping[str, Any]) -> str:
        """The job id from the natural key in ``kwargs`` (validated wire fields)."""
        return ":".join([self.operation.value, *(str(kwargs[name]) for name in self.key_fields)])


def _new_uuid(now: float) -> str:
    return str(uuid.uuid4())


def _epoch_seconds(now: float) -> int:
    return int(now)


OPERATIONS: Mapping[Operation, OperationSpec] = MappingProxyType({row.operation: row for row in (
    OperationSpec(
        Operation.CAPTURE, "/v1/capture/charge", CaptureRequest, None,
        task="payments.capture", queue="payments.capture", key_fields=("storeId", "shoppingTripId"),
        summary="Capture a trip's cart total, then chain its payment-status report.",
    ),
    OperationSpec(
        Operation.CANCEL, "/v1/cancel/charge", CancelRequest, None,
        task="payments.cancel", queue="payments.cancel", key_fields=("storeId", "shoppingTripId"),
        summary="Cancel an empty cart's pre-authorisation.",
    ),
    OperationSpec(
        Operation.REFUND, "/v1/refund", RefundRequest, RefundResponse,
        task="payments.refund", queue="payments.refund", key_fields=("refundRequestId",),
        summary="Refund part or all of a captured trip (idempotent by refundRequestId).",
        defaults={"refundRequestId": _new_uuid},
    ),
    OperationSpec(
        Operation.FEEDBACK, "/v1/feedback/payment-status", FeedbackRequest, FeedbackResponse,
        task="payments.report_payment_status", queue="payments.feedback",
        key_fields=("storeId", "shoppingTripId", "paymentStatusTime"),
        summary="Report a trip's payment status to fraud and abuse.",
        defaults={"paymentStatusTime": _epoch_seconds},
    ),
)})

# the payment API's operations: what the sandbox serves, what is paced and counted per endpoint
API_OPERATIONS: tuple[Operation, ...] = tuple(row.operation for row in OPERATIONS.values() if row.path is not None)
QUEUES: tuple[str, ...] = tuple(row.queue for row in OPERATIONS.values())


def api_path(operation: Operation) -> str:
    """The payment API's path for ``operation`` (``ValueError`` for payq's own ``notify``)."""
    path = OPERATIONS[operation].path if operation in OPERATIONS else None
    if path is None:
        raise ValueError(f"{operation.value} is not a payment API operation")
    return path


def lookup(name: str, field_name: str = "operation") -> OperationSpec:
    """The row for a payment operation named by a caller; :class:`InvalidRequest` naming ``field_name`` if there is none.

    Only the payment API's operations: outcome notifications are payq's to make.
    """
    try:
        operation = Operation(name)
    except ValueError:
        operation = None
    if operation not in API_OPERATIONS:
        choices = ", ".join(op.value for op in API_OPERATIONS)
        raise InvalidRequest([FieldProblem(field_name, f"must be one of {choices}")])
    return OPERATIONS[operation]


def with_defaults(spec: OperationSpec, fields: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """``fields`` with each missing (or null) defaulted key field filled in, as at enqueue."""
    filled = dict(fields)
    stamp = time.time() if now is None else now
    for name, make in spec.defaults.items():
        if filled.get(name) is None:
            filled[name] = make(stamp)
    return filled
