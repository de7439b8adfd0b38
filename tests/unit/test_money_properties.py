"""Properties of money on the wire: any valid request survives JSON exactly, any invalid field is named.

Amounts are built as Decimals from whole cents (never from floats), with 0, 1
or 2 decimal places, so the digits the API receives can be compared as text.
"""

from __future__ import annotations

import re
import string
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from payapi import wire
from payapi.errors import InvalidRequest
from payapi.models import (
    REFUND_REASON_CODES,
    REFUND_REQUEST_ID_PATTERN,
    Amount,
    CancelRequest,
    CaptureRequest,
    FeedbackRequest,
    RefundRequest,
    RequestModel,
    parse_request,
)

# pydantic's first validation of a model can take longer than hypothesis' default deadline.
NO_DEADLINE = settings(deadline=None)
ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
NOT_DIGITS = string.ascii_letters + string.punctuation.replace("-", "").replace(".", "").replace("+", "") + " \t"
MAX_CENTS = 9_999_999  # 99999.99
# A JSON number as the wire writes it: digits, an optional fraction, never an exponent.
PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")

# --- strategies for valid values -----------------------------------------------------------------

ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=255)
currencies = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3)
refund_request_ids = st.one_of(
    st.uuids(version=4).map(str),
    st.from_regex(REFUND_REQUEST_ID_PATTERN, fullmatch=True),
)
reason_codes = st.sampled_from(REFUND_REASON_CODES)
times = st.integers(min_value=0, max_value=253402300799)  # up to the end of year 9999


@st.composite
def amounts(draw: st.DrawFn, min_cents: int = 1) -> Decimal:
    """A Decimal between ``min_cents`` cents and 99999.99 with 0, 1 or 2 decimal places, e.g. 19.99, 19.9, 19."""
    places = draw(st.sampled_from([0, 1, 2]))
    step = 10 ** (2 - places)  # cents per unit of the last place
    units = draw(st.integers(min_value=-(-min_cents // step), max_value=MAX_CENTS // step))
    return Decimal(units).scaleb(-places)


def money(min_cents: int = 1, code: st.SearchStrategy[str] = currencies) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"amount": amounts(min_cents), "code": code})


trip = {"storeId": ids, "shoppingTripId": ids}
capture_bodies = st.fixed_dictionaries({**trip, "amount": money()})
cancel_bodies = st.fixed_dictionaries(trip)
refund_bodies = st.fixed_dictionaries(
    {**trip, "amount": money(), "refundRequestId": refund_request_ids, "refundReasonCode": reason_codes}
)


@st.composite
def feedback_bodies(draw: st.DrawFn) -> dict[str, Any]:
    code = draw(currencies)
    return {
        "storeId": draw(ids),
        "shoppingTripId": draw(ids),
        "totalAmount": draw(money(min_cents=0, code=st.just(code))),
        "settledAmount": draw(money(min_cents=0, code=st.just(code))),
        "paymentStatusTime": draw(times),
    }


requests_bodies = st.one_of(
    st.tuples(st.just(CaptureRequest), capture_bodies),
    st.tuples(st.just(CancelRequest), cancel_bodies),
    st.tuples(st.just(RefundRequest), refund_bodies),
    st.tuples(st.just(FeedbackRequest), feedback_bodies()),
)


def amounts_of(request: RequestModel) -> dict[str, Amount]:
    """Every Amount in ``request`` by its wire name."""
    return {name: value for name, value in request if isinstance(value, Amount)}


# --- round trips ---------------------------------------------------------------------------------


@NO_DEADLINE
@given(requests_bodies)
def test_a_valid_request_survives_the_wire_unchanged(case: tuple[type[RequestModel], dict[str, Any]]) -> None:
    model, body = case
    request = parse_request(model, body)

    text = wire.dumps(request)
    again = parse_request(model, wire.loads(text))

    assert again == request
    for name, amount in amounts_of(request).items():
        returned = amounts_of(again)[name]
        assert returned.amount == amount.amount
        assert str(returned.amount) == str(amount.amount)  # same digits, same places: 19.90 stays 19.90


@NO_DEADLINE
@given(requests_bodies)
def test_amounts_are_written_as_plain_json_numbers_with_their_exact_digits(
    case: tuple[type[RequestModel], dict[str, Any]],
) -> None:
    model, body = case
    request = parse_request(model, body)

    text = wire.dumps(request)

    for name, amount in amounts_of(request).items():
        digits = format(body[name]["amount"], "f")
        assert PLAIN_NUMBER.fullmatch(digits)
        assert f'"{name}":{{"amount":{digits},"code":"{amount.code}"}}' in text


@NO_DEADLINE
@given(amounts())
def test_an_amount_is_never_written_in_exponent_form_or_as_a_float_repr(amount: Decimal) -> None:
    request = parse_request(CaptureRequest, {"storeId": "s", "shoppingTripId": "t", "amount": {"amount": amount, "code": "USD"}})

    written = wire.dumps(request).split('"amount":{"amount":', 1)[1].split(",", 1)[0]

    assert written == format(amount, "f")
    assert "e" not in written.lower()
    assert Decimal(written) == amount


@NO_DEADLINE
@given(requests_bodies)
def test_task_kwargs_carry_amounts_as_strings_and_parse_back_to_the_same_request(
    case: tuple[type[RequestModel], dict[str, Any]],
) -> None:
    model, body = case
    request = parse_request(model, body)

    kwargs = wire.to_kwargs(request)

    assert parse_request(model, kwargs) == request
    for name in amounts_of(request):
        assert kwargs[name]["amount"] == format(body[name]["amount"], "f")


# --- invalid values ------------------------------------------------------------------------------


def not_matching(pattern: str, **text: Any) -> st.SearchStrategy[str]:
    return st.text(**text).filter(lambda s: re.fullmatch(pattern, s) is None)


bad_ids = st.one_of(
    not_matching(r"[0-9a-zA-Z_-]+", min_size=1, max_size=40),
    st.just(""),
    st.text(alphabet=ID_ALPHABET, min_size=256, max_size=300),
)
bad_codes = not_matching(r"[A-Z]{3}", max_size=6)
bad_amounts = st.one_of(
    # a third decimal place that is not zero
    st.integers(min_value=1, max_value=10**9).filter(lambda n: n % 10).map(lambda n: Decimal(n).scaleb(-3)),
    st.floats(),  # floats never touch money, not even 1.0
    st.booleans(),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "sNaN", Decimal("NaN"), Decimal("Infinity")]),
    st.text(alphabet=NOT_DIGITS, max_size=10),  # never a number; "nan" or "inf" is refused as not finite
)
negative_amounts = amounts().map(lambda a: -a)
bad_refund_ids = st.one_of(
    not_matching(REFUND_REQUEST_ID_PATTERN.strip("^$"), max_size=40),
    st.uuids(version=4).map(lambda u: str(u).upper()).filter(lambda s: re.search("[A-F]", s) is not None),
)
bad_reason_codes = st.text(max_size=20).filter(lambda s: s not in REFUND_REASON_CODES)
bad_times = st.one_of(st.integers(max_value=-1), st.integers(min_value=253402300800), st.floats().filter(lambda f: not f.is_integer()))

# (model, dotted field, strategy of invalid values) for every rule the models enforce
INVALID_FIELDS: list[tuple[type[RequestModel], str, st.SearchStrategy[Any]]] = [
    *[(m, "storeId", bad_ids) for m in (CaptureRequest, CancelRequest, RefundRequest, FeedbackRequest)],
    *[(m, "shoppingTripId", bad_ids) for m in (CaptureRequest, CancelRequest, RefundRequest, FeedbackRequest)],
    (CaptureRequest, "amount.code", bad_codes),
    (RefundRequest, "amount.code", bad_codes),
    (FeedbackRequest, "settledAmount.code", bad_codes),  # also a currency mismatch: either way, that field
    (CaptureRequest, "amount.amount", bad_amounts),
    (RefundRequest, "amount.amount", bad_amounts),
    (FeedbackRequest, "totalAmount.amount", bad_amounts),
    (FeedbackRequest, "settledAmount.amount", bad_amounts),
    (CaptureRequest, "amount.amount", st.one_of(negative_amounts, st.just(Decimal("0")))),
    (RefundRequest, "amount.amount", st.one_of(negative_amounts, st.just(Decimal("0.00")))),
    (FeedbackRequest, "totalAmount.amount", negative_amounts),
    (FeedbackRequest, "settledAmount.amount", negative_amounts),
    (RefundRequest, "refundRequestId", bad_refund_ids),
    (RefundRequest, "refundReasonCode", bad_reason_codes),
    (FeedbackRequest, "paymentStatusTime", bad_times),
]
BODY_STRATEGIES: dict[type[RequestModel], st.SearchStrategy[dict[str, Any]]] = {
    CaptureRequest: capture_bodies,
    CancelRequest: cancel_bodies,
    RefundRequest: refund_bodies,
    FeedbackRequest: feedback_bodies(),
}


@st.composite
def one_invalid_field(draw: st.DrawFn) -> tuple[type[RequestModel], str, dict[str, Any]]:
    model, path, bad_values = draw(st.sampled_from(INVALID_FIELDS))
    body = draw(BODY_STRATEGIES[model])
    *parents, last = path.split(".")
    target = body
    for part in parents:
        target = target[part]
    target[last] = draw(bad_values)
    return model, path, body


@settings(max_examples=300, deadline=None)
@given(one_invalid_field())
def test_one_invalid_field_is_refused_with_that_field_named(case: tuple[type[RequestModel], str, dict[str, Any]]) -> None:
    model, path, body = case

    try:
        parse_request(model, body)
    except InvalidRequest as exc:
        assert {p.field for p in exc.problems} == {path}, exc.problems
    else:
        raise AssertionError(f"{model.__name__} accepted {path}={body!r}")
