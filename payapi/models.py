"""The payment API's request and response bodies, with the spec's rules.

Field names are the wire names (``storeId``, not ``store_id``) so a model, its
JSON and a task's kwargs read the same everywhere. Money is ``Decimal`` end to
end: a float is refused rather than rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from payapi.errors import FieldProblem, InvalidRequest

STORE_ID_PATTERN = r"^[0-9a-zA-Z_-]*$"
TRIP_ID_PATTERN = r"^[0-9a-zA-Z_-]+$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
REFUND_REQUEST_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-5][0-9a-f]{3}-[089ab][0-9a-f]{3}-[0-9a-f]{12}$"
RECONCILIATION_ID_PATTERN = r"^[0-9a-zA-Z]*$"
REFUND_REASON_CODES = ("DAMAGED_ITEM", "EXPIRED_ITEM", "UNWANTED_ITEM", "JWO_TECH_ERROR", "OTHER")
# payq's own sanity bound, not the spec's: a cart total of a trillion is a typo.
MAX_AMOUNT = Decimal("1000000000000")
_CENT = Decimal("0.01")


def _to_money(value: Any) -> Decimal:
    """Parse an amount without ever passing through float, to at most 2 decimal places."""
    if isinstance(value, bool | float):
        raise PydanticCustomError(
            "money_type", "must be a decimal number given as a string, int or Decimal, not {kind}",
            {"kind": type(value).__name__},
        )
    if isinstance(value, int):
        value = Decimal(value)
    elif isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            # escaped: a lone surrogate from a command line cannot be rendered into a message as it is
            shown = value[:40].encode("unicode_escape").decode("ascii")
            raise PydanticCustomError("money_parse", "must be a decimal number, got '{value}'", {"value": shown}) from None
    if not isinstance(value, Decimal):
        raise PydanticCustomError("money_type", "must be a decimal number, not {kind}", {"kind": type(value).__name__})
    if not value.is_finite():
        raise PydanticCustomError("money_finite", "must be a finite number, got {value}", {"value": str(value)})
    if value and value.adjusted() >= MAX_AMOUNT.adjusted():  # by exponent: abs() of 1e999999999 overflows
        raise PydanticCustomError("money_range", "must be less than {limit}", {"limit": str(MAX_AMOUNT)})
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -2:
        if value != value.quantize(_CENT):
            raise PydanticCustomError(
                "money_places", "must have at most 2 decimal places, got {value}", {"value": str(value)}
            )
        value = value.quantize(_CENT)  # 19.990 is 19.99: trailing zeros only
    elif exponent > 0:
        value = value.quantize(Decimal(1))  # 1E+1 goes out as 10, never in exponent form
    if value.is_zero():
        value = value.copy_abs()  # -0.00 is 0.00: never a signed zero on the wire
    result: Decimal = value
    return result


def _not_bool(value: Any) -> Any:
    """Refuse true/false where an integer is meant; lax int validation would read them as 1/0."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_not_bool", "must be an integer, not bool", {})
    return value


Money = Annotated[Decimal, BeforeValidator(_to_money)]
StoreId = Annotated[str, Field(min_length=1, max_length=255, pattern=STORE_ID_PATTERN)]
TripId = Annotated[str, Field(min_length=1, max_length=255, pattern=TRIP_ID_PATTERN)]
CurrencyCode = Annotated[str, Field(pattern=CURRENCY_PATTERN)]
RefundReasonCode = Literal["DAMAGED_ITEM", "EXPIRED_ITEM", "UNWANTED_ITEM", "JWO_TECH_ERROR", "OTHER"]


class _Request(BaseModel):
    """A request body: strict about unknown keys, so a typo in a job file is an error, not a dropped field."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class _Response(BaseModel):
    """A response body: new attributes the API adds later are ignored, never an error."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Amount(_Request):
    """A sum of money in one currency, as the wire's ``{"amount": …, "code": …}``."""

    amount: Money
    code: CurrencyCode


class _TripRequest(_Request):
    storeId: StoreId
    shoppingTripId: TripId


def _must_be_positive(amount: Amount, name: str) -> None:
    if amount.amount <= 0:
        raise PydanticCustomError("money_positive", "{name}.amount must be greater than 0", {"name": name})


class CaptureRequest(_TripRequest):
    """``POST /v1/capture/charge``: charge the cart total (greater than 0; an empty cart is cancelled)."""

    amount: Amount

    @model_validator(mode="after")
    def _positive(self) -> CaptureRequest:
        _must_be_positive(self.amount, "amount")
        return self


class CancelRequest(_TripRequest):
    """``POST /v1/cancel/charge``: release an empty cart's pre-authorisation."""


class RefundRequest(_TripRequest):
    """``POST /v1/refund``: refund part or all of a capture within 7 days; ``refundRequestId`` is the idempotency key."""

    amount: Amount
    refundRequestId: Annotated[str, Field(max_length=36, pattern=REFUND_REQUEST_ID_PATTERN)]
    refundReasonCode: RefundReasonCode

    @model_validator(mode="after")
    def _positive(self) -> RefundRequest:
        _must_be_positive(self.amount, "amount")
        return self


class FeedbackRequest(_TripRequest):
    """``POST /v1/feedback/payment-status``: tell fraud and abuse what a trip's shopper has paid."""

    totalAmount: Amount
    settledAmount: Amount
    # epoch seconds up to the last second of year 9999: anything later is a unit mistake (ms, µs)
    paymentStatusTime: Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=253402300799, strict=False)]

    @model_validator(mode="after")
    def _consistent(self) -> FeedbackRequest:
        for name in ("totalAmount", "settledAmount"):
            if getattr(self, name).amount < 0:
                raise PydanticCustomError("money_nonnegative", "{name}.amount must be at least 0", {"name": name})
        if self.totalAmount.code != self.settledAmount.code:
            raise PydanticCustomError("currency_mismatch", "totalAmount.code and settledAmount.code must be the same currency", {})
        return self


class RefundResponse(_Response):
    """A refund's 200 body."""

    reconciliationId: Annotated[str, Field(max_length=64, pattern=RECONCILIATION_ID_PATTERN)]


class FeedbackResponse(_Response):
    """A payment-status report's 200 body; ``Rejected`` means fraud and abuse did not take it."""

    status: Literal["Accepted", "Rejected"]
    reasonCode: str | None = None


class NotificationData(BaseModel):
    """What an outcome notification says about a job (``data`` of its body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobId: str
    operation: str
    storeId: str | None = None
    shoppingTripId: str | None = None
    state: Literal["succeeded", "dead-lettered"]
    result: dict[str, Any] | None = None
    reason: str | None = None
    status: int | None = None
    errorMsg: str | None = None


class NotificationEvent(BaseModel):
    """payq's own outbound body: an outcome notification, signed per Standard Webhooks when delivered.

    ``id`` is the ``webhook-id``: stable per event, the receiver's idempotency
    key. ``type`` is ``job.succeeded`` or ``job.dead_lettered`` (``test`` for
    ``payq notify test``); ``timestamp`` when the outcome was recorded (UTC, ISO 8601).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=512)
    type: Literal["job.succeeded", "job.dead_lettered", "test"]
    timestamp: str
    data: NotificationData


class ErrorBody(_Response):
    """An error body; ``retryAfter`` (seconds, as a string) comes with a 503."""

    errorMsg: str | None = None
    retryAfter: Annotated[str | None, BeforeValidator(lambda v: None if v is None else str(v))] = None


def describe(error: ValidationError) -> list[FieldProblem]:
    """Turn pydantic's errors into (field, rule) pairs an operator can read."""
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "(body)"
        rule = item["msg"]
        kind = item["type"]
        if kind == "missing":
            rule = "is required"
        elif kind == "extra_forbidden":
            rule = "is not a known field"
        elif kind == "string_pattern_mismatch":
            rule = f"must match {item['ctx']['pattern']}"
        elif kind == "string_too_long":
            rule = f"must be at most {item['ctx']['max_length']} characters"
        elif kind == "string_too_short":
            rule = "must not be empty"
        elif kind == "literal_error":
            rule = f"must be one of {item['ctx']['expected']}"
        elif kind in ("money_positive", "money_nonnegative"):
            # model-level rules: name the field they are about, not the model
            field, _, rule = rule.partition(" ")
        elif kind == "currency_mismatch":
            field, rule = "settledAmount.code", "must be the same currency as totalAmount.code"
        elif not kind.startswith("money_"):
            rule = rule[0].lower() + rule[1:]
        problems.append(FieldProblem(field, rule))
    return problems


RequestModel = CaptureRequest | CancelRequest | RefundRequest | FeedbackRequest
ResponseModel = RefundResponse | FeedbackResponse
Body = TypeVar("Body", bound=BaseModel)


def parse_request(model: type[Body], data: Any) -> Body:
    """Validate ``data`` as ``model``; raise :class:`InvalidRequest` naming every bad field."""
    if not isinstance(data, dict):
        raise InvalidRequest([FieldProblem("(body)", "must be a JSON object")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc)) from None
