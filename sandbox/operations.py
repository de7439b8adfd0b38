"""The four API operations as the sandbox answers them: validate the body, apply it to the ledger, build the reply.

No HTTP here: :func:`perform` turns a decoded body into a :class:`Reply`, and
the server decides whether that reply (or a fault instead) goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from payapi import wire
from payapi.errors import InvalidRequest
from payapi.models import CancelRequest, CaptureRequest, NotificationEvent, RefundRequest, RequestModel, parse_request
from payapi.operations import OPERATIONS, Operation
from sandbox.ledger import Ledger, LedgerError, Money

# What the "extra" fault adds: attributes a future API version might send.
EXTRA_ATTRIBUTES: dict[str, Any] = {
    "futureField": {"nested": True, "note": "added by the sandbox's extra fault"},
    "requestId": "sandbox-extra",
}


@dataclass(frozen=True, slots=True)
class Decoded:
    """A request body as parsed JSON, or why it is not JSON; with the ids fault rules filter on."""

    data: Any = None
    error: str | None = None
    store_id: str | None = None
    trip_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: ``payload`` is the JSON body (``None``: empty), ``error_type`` the ``x-amzn-ErrorType`` header."""

    status: int
    payload: dict[str, Any] | None = None
    error_type: str | None = None

    def body(self) -> bytes:
        """The body as sent: amounts (``Decimal``) as exact JSON numbers."""
        return b"" if self.payload is None else wire.dumps(self.payload).encode()

    def with_extra_attributes(self) -> Reply:
        """The same reply with attributes the client has never heard of."""
        return replace(self, payload={**(self.payload or {}), **EXTRA_ATTRIBUTES})


OK = Reply(200)


def decode(body: bytes) -> Decoded:
    """Parse a request body (amounts as ``Decimal``) and pick out the trip it is about, if it says."""
    try:
        data = wire.loads(body)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return Decoded(error=f"(body): must be valid JSON ({exc})")
    if not isinstance(data, dict):
        return Decoded(data)
    store_id, trip_id = data.get("storeId"), data.get("shoppingTripId")
    return Decoded(data, None, store_id if isinstance(store_id, str) else None, trip_id if isinstance(trip_id, str) else None)


def bad_request(message: str) -> Reply:
    """A 400 ``BadRequestException`` with ``message`` after the type, as the API words it."""
    return Reply(400, {"errorMsg": f"BadRequestException: {message}"}, "BadRequestException")


def perform(ledger: Ledger, operation: Operation, decoded: Decoded) -> Reply:
    """Validate the request and apply it to the ledger; every refusal is a 400 naming the field or the rule."""
    if decoded.error is not None:
        return bad_request(decoded.error)
    model = OPERATIONS[operation].request
    data = decoded.data
    if isinstance(data, dict):
        # The real API tolerates attributes it does not know at the top level; so does the sandbox.
        data = {k: v for k, v in data.items() if k in model.model_fields}
    try:
        request = parse_request(model, data)
        assert not isinstance(request, NotificationEvent), "the sandbox serves only the payment API's operations"
        return _apply(ledger, request)
    except InvalidRequest as exc:
        return bad_request("; ".join(str(p) for p in exc.problems))
    except LedgerError as exc:
        return Reply(400, {"errorMsg": str(exc)}, exc.kind)


def _apply(ledger: Ledger, request: RequestModel) -> Reply:
    store, trip = request.storeId, request.shoppingTripId
    if isinstance(request, CaptureRequest):
        ledger.capture(store, trip, Money(request.amount.amount, request.amount.code))
        return OK
    if isinstance(request, CancelRequest):
        ledger.cancel(store, trip)
        return OK
    if isinstance(request, RefundRequest):
        money = Money(request.amount.amount, request.amount.code)
        return Reply(200, {"reconciliationId": ledger.refund(store, trip, request.refundRequestId, money)})
    verdict = ledger.report(
        store, trip, request.totalAmount.amount, request.settledAmount.amount, wire.to_kwargs(request)
    )
    return Reply(200, {"status": verdict.status, "reasonCode": verdict.reason_code})
