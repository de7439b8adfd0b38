"""The payment API's request and response bodies, with the spec's rules.

Field names are the wire names (``storeId``, not ``store_id``) so a model, its
JSON and a task's kwargs read the same everywhere. Money is ``Decimal`` end to
end: a float is refused rather than rounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from payapi.errors import FieldProblem, InvalidRequest
from payapi.wire import NotPlainNumber

_ID_CHARACTER = "[0-9a-zA-Z_-]"
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-5][0-9a-f]{3}-[089ab][0-9a-f]{3}-[0-9a-f]{12}"
ID_MAX_LENGTH = 255
STORE_ID_PATTERN = f"^{_ID_CHARACTER}*$"
TRIP_ID_PATTERN = f"^{_ID_CHARACTER}+$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
REFUND_REQUEST_ID_PATTERN = f"^{_UUID}$"
RECONCILIATION_ID_PATTERN = r"^[0-9a-zA-Z]*$"
REFUND_REASON_CODES = ("DAMAGED_ITEM", "EXPIRED_ITEM", "UNWANTED_ITEM", "JWO_TECH_ERROR", "OTHER")
# payq's own sanity bound, not the spec's: a cart total of a trillion is a typo. A power of ten: an amount is checked by its digits.
MAX_AMOUNT = Decimal("1000000000000")
_WHOLE_DIGITS = MAX_AMOUNT.adjusted()  # at most 12 digits before the point (leading zeros aside)
PLACES = 2
_CENT = Decimal(1).scaleb(-PLACES)
# the one string form of an amount: ASCII digits, at most one point with a digit on each side (as a JSON number, unsigned)
PLAIN_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# epoch seconds up to the last second of year 9999: anything later is a unit mistake (ms, µs)
LATEST_PAYMENT_STATUS_TIME = 253402300799
# each field a job id can be made of, as it appears in the id (unanchored, with its length): the patterns above, and the time's digits
KEY_FIELD_PATTERNS = {
    "storeId": f"{_ID_CHARACTER}{{1,{ID_MAX_LENGTH}}}",
    "shoppingTripId": f"{_ID_CHARACTER}{{1,{ID_MAX_LENGTH}}}",
    "refundRequestId": _UUID,
    "paymentStatusTime": f"[0-9]{{1,{len(str(LATEST_PAYMENT_STATUS_TIME))}}}",
}


def _kind(value: Any) -> str:
    """What a value is, in JSON's words (a store backend may never have seen Python)."""
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a binary floating-point number (send a JSON number, a string or a Decimal)"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _shown(text: str) -> str:
    # escaped: a lone surrogate from a command line cannot be rendered into a message as it is
    return text[:40].encode("unicode_escape").decode("ascii")


def _to_money(value: Any) -> Decimal:
    """Parse an amount without ever passing through float, to at most 2 decimal places.

    Only the plain forms the API documents: an integer, a ``Decimal`` (a JSON
    number read exactly), or a string of digits with at most one point and a
    digit on each side (``"19.99"``). Refused: an exponent (``"1e3"`` is a
    typo far more often than a thousand), spaces, a sign, ``"1_000"``,
    ``".5"``, ``"NaN"``, ``"Infinity"``, and a JSON number in exponent form.
    """
    if isinstance(value, NotPlainNumber):
        raise PydanticCustomError("money_form", "must be a plain decimal number such as 19.99, not {value}", {"value": _shown(value)})
    if isinstance(value, bool | float) or not isinstance(value, int | str | Decimal):
        raise PydanticCustomError("money_type", "must be a JSON number or a string of digits such as \"19.99\", not {kind}",
                                  {"kind": _kind(value)})
    if isinstance(value, int):
        value = Decimal(value)
    elif isinstance(value, str):
        if not PLAIN_AMOUNT.fullmatch(value):
            raise PydanticCustomError(
                "money_form",
                "must be digits with at most one decimal point, such as \"19.99\" (no sign, exponent, spaces or separators), got '{value}'",
                {"value": _shown(value)},
            )
        value = Decimal(value)
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
        raise PydanticCustomError("int_not_bool", "must be an integer, not a boolean", {})
    return value


def _greater_than_zero(value: Decimal) -> Decimal:
    if value <= 0:
        raise PydanticCustomError("money_positive", "must be greater than 0", {})
    return value


def _at_least_zero(value: Decimal) -> Decimal:
    if value < 0:
        raise PydanticCustomError("money_nonnegative", "must be at least 0", {})
    return value


def amount_pattern(*, positive: bool) -> str:
    """The string amounts :func:`_to_money` and the field's sign rule take, as a JSON Schema (ECMA-262) pattern, from the same constants.

    Digits with at most one point and a digit on each side; leading zeros
    and trailing zeros after the places are harmless (``007.50``,
    ``19.990``); fewer than ``MAX_AMOUNT``'s digits before the point; and, if
    ``positive``, some digit other than 0 within the places.
    """
    fraction = rf"\.[0-9]{{1,{PLACES}}}0*"
    if not positive:
        return rf"^0*[0-9]{{1,{_WHOLE_DIGITS}}}(?:{fraction})?$"
    # below 1: the first digit other than 0 is one of the places; each alternative puts it at one of them
    cents = "|".join(f"{'0' * k}[1-9]" + (f"[0-9]{{0,{PLACES - 1 - k}}}" if k < PLACES - 1 else "") for k in range(PLACES))
    return rf"^(?:0*[1-9][0-9]{{0,{_WHOLE_DIGITS - 1}}}(?:{fraction})?|0+\.(?:{cents})0*)$"


_FORMS = ("A JSON number (read exactly, never as a binary float, and never in exponent form such as 1e3) or a string of digits "
          "with at most one point (no sign, exponent or spaces)")


def _money_schema(*, positive: bool) -> WithJsonSchema:
    sign = "greater than 0" if positive else "at least 0"
    return WithJsonSchema({
        "description": f"{_FORMS}; {sign}, less than {MAX_AMOUNT}, with at most {PLACES} decimal places.",
        "oneOf": [
            {"type": "number", "exclusiveMinimum" if positive else "minimum": 0, "exclusiveMaximum": int(MAX_AMOUNT),
             "multipleOf": float(_CENT)},
            {"type": "string", "pattern": amount_pattern(positive=positive), "examples": ["19.99"]},
        ],
    })


# each rule on the field itself, not on the model: a model's own rules run only once all its fields pass,
# so an amount's sign would be named in a second round, after every other field was fixed
Money = Annotated[Decimal, BeforeValidator(_to_money), AfterValidator(_at_least_zero), _money_schema(positive=False)]
PositiveMoney = Annotated[Decimal, BeforeValidator(_to_money), AfterValidator(_greater_than_zero), _money_schema(positive=True)]
StoreId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=STORE_ID_PATTERN)]
TripId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=TRIP_ID_PATTERN)]
CurrencyCode = Annotated[str, Field(pattern=CURRENCY_PATTERN, description="ISO 4217 code, three capital letters.", examples=["USD"])]
RefundReasonCode = Literal["DAMAGED_ITEM", "EXPIRED_ITEM", "UNWANTED_ITEM", "JWO_TECH_ERROR", "OTHER"]


class _Request(BaseModel):
    """A request body: strict about unknown keys, so a typo in a job file is an error, not a dropped field."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class _Response(BaseModel):
    """A response body: new attributes the API adds later are ignored, never an error."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Amount(_Request):
    """A sum of money in one currency, as the wire's ``{"amount": …, "code": …}``; at least 0."""

    amount: Money
    code: CurrencyCode


class PositiveAmount(Amount):
    """An amount greater than 0 (a capture's, a refund's)."""

    amount: PositiveMoney


def _amount_fields(value: Any) -> Any:
    # an Amount built in Python is checked again as a PositiveAmount: its fields, not refused for its class
    return value.model_dump() if isinstance(value, Amount) and not isinstance(value, PositiveAmount) else value


AmountAboveZero = Annotated[PositiveAmount, BeforeValidator(_amount_fields)]


class _TripRequest(_Request):
    storeId: StoreId
    shoppingTripId: TripId


class CaptureRequest(_TripRequest):
    """``POST /v1/capture/charge``: charge the cart total (greater than 0; an empty cart is cancelled)."""

    amount: AmountAboveZero


class CancelRequest(_TripRequest):
    """``POST /v1/cancel/charge``: release an empty cart's pre-authorisation."""


class RefundRequest(_TripRequest):
    """``POST /v1/refund``: refund part or all of a capture within 7 days; ``refundRequestId`` is the idempotency key."""

    amount: AmountAboveZero
    refundRequestId: Annotated[str, Field(max_length=36, pattern=REFUND_REQUEST_ID_PATTERN)]
    refundReasonCode: RefundReasonCode


# a rule between two fields: JSON Schema cannot say it, so each field's description does (and docs/store-backends.md lists it)
SAME_CURRENCY = "Its `code` must be the same currency as the other amount's (`totalAmount.code` = `settledAmount.code`)."


class FeedbackRequest(_TripRequest):
    """``POST /v1/feedback/payment-status``: tell fraud and abuse what a trip's shopper has paid; both amounts in one currency."""

    totalAmount: Annotated[Amount, Field(description=f"What the trip cost. {SAME_CURRENCY}")]
    settledAmount: Annotated[Amount, Field(description=f"What the shopper has paid of it. {SAME_CURRENCY}")]
    paymentStatusTime: Annotated[int, Field(ge=0, le=LATEST_PAYMENT_STATUS_TIME, description="Epoch seconds (UTC)."), BeforeValidator(_not_bool)]

    @model_validator(mode="after")
    def _consistent(self) -> FeedbackRequest:
        if self.totalAmount.code != self.settledAmount.code:
            raise PydanticCustomError("currency_mismatch", "totalAmount.code and settledAmount.code must be the same currency", {})
        return self

    @staticmethod
    def cross_field_problems(data: dict[str, Any], named: set[str]) -> list[FieldProblem]:
        """The model's own rule, read from raw ``data`` when other fields failed (pydantic skips it then); ``named``: fields already named."""
        codes = [(data.get(name) or {}).get("code") if isinstance(data.get(name), dict) else None for name in ("totalAmount", "settledAmount")]
        if {"totalAmount.code", "settledAmount.code"} & named or not all(isinstance(c, str) for c in codes) or codes[0] == codes[1]:
            return []
        return [FieldProblem("settledAmount.code", "must be the same currency as totalAmount.code")]


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


_RULES: dict[str, Callable[[dict[str, Any]], str]] = {
    # pydantic's error types, in the API's words: a store backend in any language reads these
    "missing": lambda ctx: "is required",
    "extra_forbidden": lambda ctx: "is not a known field",
    "string_pattern_mismatch": lambda ctx: f"must match {ctx['pattern']}",
    "string_too_long": lambda ctx: f"must be at most {ctx['max_length']} characters",
    "string_too_short": lambda ctx: "must not be empty",
    "string_type": lambda ctx: "must be a string",
    "literal_error": lambda ctx: f"must be one of {ctx['expected']}",
    "int_type": lambda ctx: "must be an integer",
    "int_parsing": lambda ctx: "must be an integer",
    "int_from_float": lambda ctx: "must be a whole number",
    "greater_than_equal": lambda ctx: f"must be at least {ctx['ge']}",
    "less_than_equal": lambda ctx: f"must be at most {ctx['le']}",
    "model_type": lambda ctx: "must be a JSON object",
    "model_attributes_type": lambda ctx: "must be a JSON object",
    "dict_type": lambda ctx: "must be a JSON object",
    "currency_mismatch": lambda ctx: "must be the same currency as totalAmount.code",
}


def describe(error: ValidationError) -> list[FieldProblem]:
    """Turn pydantic's errors into (field, rule) pairs in the API's words, each field by its dotted wire path."""
    return describe_errors(error.errors(include_url=False))


def describe_errors(errors: Iterable[Mapping[str, Any]], *, skip: int = 0) -> list[FieldProblem]:
    """As :func:`describe`, from pydantic's error dicts (a web framework's too: ``skip`` drops its leading ``loc`` parts, such as ``path``)."""
    problems = []
    for item in errors:
        field = ".".join(str(part) for part in item["loc"][skip:]) or "(body)"
        kind = item["type"]
        if kind == "currency_mismatch":
            field = "settledAmount.code"  # a model-level rule: name the field it is about, not the model
        wording = _RULES.get(kind)
        # payq's own rules (money_*) are worded already
        rule = wording(item.get("ctx") or {}) if wording is not None else item["msg"][0].lower() + item["msg"][1:]
        problems.append(FieldProblem(field, rule))
    return problems


def trip_id_problems(fields: dict[str, Any]) -> list[FieldProblem]:
    """What is wrong with ``storeId`` and ``shoppingTripId`` in ``fields``: the same rules for every operation.

    For a job whose operation is missing or unknown (so the rest of its rules
    are unknown too), named in the same answer as the operation.
    """
    try:
        CancelRequest.model_validate({name: fields[name] for name in ("storeId", "shoppingTripId") if name in fields})
    except ValidationError as exc:
        return describe(exc)
    return []


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
        problems = describe(exc)
    # a model's own rules run only when every field passed: read them from the raw data, so they are named in this answer too
    cross_check = getattr(model, "cross_field_problems", None)
    if cross_check is not None:
        problems += cross_check(data, {p.field for p in problems})
    raise InvalidRequest(problems)
