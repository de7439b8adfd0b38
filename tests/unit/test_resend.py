"""Whether a job sent again is the same job: a table of stored and sent kwargs, and the fields that differ."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from payapi.errors import FieldDifference, JobConflict
from payapi.operations import Operation
from tasks.jobs.resend import differences, stored_differences

TRIP = {"storeId": "s1", "shoppingTripId": "t1"}
REFUND_ID = "5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a"


def capture(amount: Any, code: str = "USD") -> dict[str, Any]:
    return {**TRIP, "amount": {"amount": amount, "code": code}}


def refund(amount: Any = "5.00", reason: str = "DAMAGED_ITEM", store: str = "s1") -> dict[str, Any]:
    return {**TRIP, "storeId": store, "amount": {"amount": amount, "code": "USD"}, "refundReasonCode": reason, "refundRequestId": REFUND_ID}


def feedback(total: str, settled: str) -> dict[str, Any]:
    return {**TRIP, "totalAmount": {"amount": total, "code": "USD"}, "settledAmount": {"amount": settled, "code": "USD"},
            "paymentStatusTime": 1_700_000_000}


@pytest.mark.parametrize(("operation", "stored", "sent", "expected"), [
    # the same amount however it is written
    (Operation.CAPTURE, capture("19.99"), capture("19.990"), []),
    (Operation.CAPTURE, capture("19.99"), capture(__import__("decimal").Decimal("19.99")), []),
    (Operation.CAPTURE, capture("20"), capture("20.00"), []),
    (Operation.CAPTURE, capture("1.00"), capture(1), []),
    # another amount, another currency
    (Operation.CAPTURE, capture("19.99"), capture("99"), [("amount.amount", "19.99", "99")]),
    (Operation.CAPTURE, capture("19.99"), capture("19.98"), [("amount.amount", "19.99", "19.98")]),
    (Operation.CAPTURE, capture("19.99"), capture("19.99", "EUR"), [("amount.code", "USD", "EUR")]),
    (Operation.CAPTURE, capture("19.99"), capture("99", "EUR"), [("amount.amount", "19.99", "99"), ("amount.code", "USD", "EUR")]),
    # a cancel is its key alone: never a conflict
    (Operation.CANCEL, TRIP, TRIP, []),
    # a refund's id is its key: every other field counts, its store and trip too
    (Operation.REFUND, refund(), refund("5"), []),
    (Operation.REFUND, refund(), refund("6.00"), [("amount.amount", "5.00", "6.00")]),
    (Operation.REFUND, refund(), refund(reason="OTHER"), [("refundReasonCode", "DAMAGED_ITEM", "OTHER")]),
    (Operation.REFUND, refund(), refund(store="s2"), [("storeId", "s1", "s2")]),
    (Operation.FEEDBACK, feedback("3.00", "3.00"), feedback("3", "3.0"), []),
    (Operation.FEEDBACK, feedback("3.00", "3.00"), feedback("3.00", "0.00"), [("settledAmount.amount", "3.00", "0.00")]),
])
def test_a_resend_differs_only_in_fields_whose_values_differ_and_money_compares_as_amounts(
    operation: Operation, stored: dict[str, Any], sent: dict[str, Any], expected: list[tuple[str, Any, Any]],
) -> None:
    found = differences(operation, "job-1", stored, sent)

    assert [(d.field, d.stored, d.sent) for d in found] == expected


def test_a_field_on_one_side_only_is_a_difference_with_none_on_the_other() -> None:
    found = differences(Operation.CAPTURE, "job-1", {**TRIP, "amount": {"amount": "1.00", "code": "USD"}, "extra": "x"}, capture("1.00"))

    assert [(d.field, d.stored, d.sent) for d in found] == [("extra", "x", None)]


@pytest.mark.parametrize(("stored_json", "expected"), [
    # what payq before conflicts wrote: json.dumps of the wire kwargs, amounts as strings
    ('{"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "19.99", "code": "USD"}}', []),
    ('{"amount": {"code": "USD", "amount": "19.990"}, "shoppingTripId": "t1", "storeId": "s1"}', []),
    ('{"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "9.99", "code": "USD"}}', [("amount.amount", "9.99", "19.99")]),
    ("not json", [("(job)", "not json", '{"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "19.99", "code": "USD"}}')]),
])
def test_a_stored_record_is_compared_from_its_kwargs_json(stored_json: str, expected: list[tuple[str, Any, Any]]) -> None:
    found = stored_differences(Operation.CAPTURE, "capture:s1:t1", stored_json, capture("19.99"))

    assert [(d.field, d.stored, d.sent) for d in found] == expected


def test_the_conflict_error_names_each_field_with_both_values_and_survives_pickling() -> None:
    error = JobConflict([FieldDifference("capture:s1:t1", "amount.amount", "19.99", "99")])

    assert error.job_ids == ["capture:s1:t1"]
    assert [p.field for p in error.problems] == ["amount.amount"]
    assert "stored 19.99, sent 99" in str(error)
    again = pickle.loads(pickle.dumps(error))
    assert again.differences == error.differences and str(again) == str(error)
