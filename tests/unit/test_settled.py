"""What a settled record keeps (tasks/jobs/settled.py), as a table: the fields written, and the record read back whole."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tasks.jobs.settled import DROPPED, compact, dropped, expand

USD = {"amount": "12.34", "code": "USD"}
REFUND_ID = "5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a"

ROWS: list[tuple[str, dict[str, Any], dict[str, Any], str | None, list[str]]] = [
    # a capture: its trip's ids and its report's id and settle time are in its id and settled_at
    ("capture:s1:t1", {"storeId": "s1", "shoppingTripId": "t1", "amount": USD},
     {"reportJobId": "feedback:s1:t1:1700000000", "settledAt": 1700000000}, "1700000000",
     ["in.amount.amount", '"12.34"', "in.amount.code", '"USD"']),
    # a report: its time is an integer key field, read back from its id as one; paid in full, its settledAmount is its totalAmount
    ("feedback:s1:t1:1700000000",
     {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": USD, "settledAmount": USD, "paymentStatusTime": 1700000000},
     {"status": "Accepted", "reasonCode": "OK"}, None,
     ["in.totalAmount.amount", '"12.34"', "in.totalAmount.code", '"USD"']),
    # a report taken with another reason code keeps it
    ("feedback:s1:t1:1700000000",
     {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": USD, "settledAmount": USD, "paymentStatusTime": 1700000000},
     {"status": "Accepted", "reasonCode": None}, None,
     ["in.totalAmount.amount", '"12.34"', "in.totalAmount.code", '"USD"', "out.reasonCode", "null"]),
    # a report of a trip paid in part keeps both amounts
    ("feedback:s1:t1:1700000000",
     {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": USD, "settledAmount": {"amount": "2.00", "code": "USD"},
      "paymentStatusTime": 1700000000}, {"status": "Accepted", "reasonCode": "OK"}, None,
     ["in.totalAmount.amount", '"12.34"', "in.totalAmount.code", '"USD"', "in.settledAmount.amount", '"2.00"',
      "in.settledAmount.code", '"USD"']),
    # the same amount written another way ("12.340"): not the same JSON, so both are kept as written
    ("feedback:s1:t1:1700000000",
     {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": USD, "settledAmount": {"amount": "12.340", "code": "USD"},
      "paymentStatusTime": 1700000000}, {"status": "Accepted", "reasonCode": "OK"}, None,
     ["in.totalAmount.amount", '"12.34"', "in.totalAmount.code", '"USD"', "in.settledAmount.amount", '"12.340"',
      "in.settledAmount.code", '"USD"']),
    # a report whose time was sent as a string (the model takes it): kept, so it reads back as sent
    ("feedback:s1:t1:1700000000", {"storeId": "s1", "shoppingTripId": "t1", "paymentStatusTime": "1700000000"},
     {"status": "Accepted", "reasonCode": "OK"}, None, ["in.paymentStatusTime", '"1700000000"']),
    # a report with a result unlike any the API gives (none): its leaves would read back as the usual answer, so kept whole
    ("feedback:s1:t1:1700000000", {"storeId": "s1", "shoppingTripId": "t1", "paymentStatusTime": 1700000000}, {}, None,
     ["kwargs", '{"storeId": "s1", "shoppingTripId": "t1", "paymentStatusTime": 1700000000}', "result", "{}"]),
    # a refund: its id is its refundRequestId, the idempotency key
    (f"refund:{REFUND_ID}", {"storeId": "s1", "shoppingTripId": "t1", "amount": USD, "refundRequestId": REFUND_ID},
     {"reconciliationId": "rec-1"}, None,
     ["in.storeId", '"s1"', "in.shoppingTripId", '"t1"', "in.amount.amount", '"12.34"', "in.amount.code", '"USD"',
      "out.reconciliationId", '"rec-1"']),
    # a cancel: everything it has its id says
    ("cancel:s1:t1", {"storeId": "s1", "shoppingTripId": "t1"}, {}, None, []),
    # a capture settled at another time than its result says: the result's leaves are kept
    ("capture:s1:t1", {"storeId": "s1", "shoppingTripId": "t1", "amount": USD},
     {"reportJobId": "feedback:s1:t1:5", "settledAt": 5}, "1700000000",
     ["in.amount.amount", '"12.34"', "in.amount.code", '"USD"', "out.reportJobId", '"feedback:s1:t1:5"', "out.settledAt", "5"]),
    # an empty object and a list are leaves of their own
    ("cancel:s1:t1", {"storeId": "s1", "shoppingTripId": "t1"}, {"empty": {}, "list": [1, "a"]}, None,
     ["out.empty", "{}", "out.list", '[1,"a"]']),
    # an id no row makes: nothing is derived
    ("odd-id", {"a": {"b": "c"}}, {}, None, ["in.a.b", '"c"']),
    # leaves that would not give the fields back (a dot in a name): both kept whole, as the previous payq kept them
    ("odd-id", {"a.b": "c"}, {"x": 1}, None, ["kwargs", '{"a.b": "c"}', "result", '{"x": 1}']),
]


@pytest.mark.parametrize(("job_id", "kwargs", "result", "settled_at", "fields"), ROWS)
def test_a_settled_record_keeps_the_leaves_its_id_does_not_say_and_reads_back_whole(
    job_id: str, kwargs: dict[str, Any], result: dict[str, Any], settled_at: str | None, fields: list[str],
) -> None:
    assert compact(job_id, kwargs, result, settled_at) == fields
    stored = {"state": "succeeded", "attempts": "1", "last_attempt_at": "1700000000.5", **dict(zip(fields[::2], fields[1::2], strict=True))}
    if settled_at is not None:
        stored["settled_at"] = settled_at
    full = expand(job_id, stored)
    assert json.loads(full["kwargs"]) == kwargs
    assert json.loads(full["result"]) == result
    assert not any(name.startswith(("in.", "out.")) for name in full)
    assert (full["state"], full["attempts"], full["first_attempt_at"]) == ("succeeded", "1", "1700000000.5"), "one attempt: first is last"
    assert full.get("op") == (job_id.split(":")[0] if ":" in job_id else None), "the operation, from the id"


def test_every_kept_value_of_a_trip_is_under_redis_s_listpack_limit_of_64_bytes() -> None:
    trip = "0b0e8a4e-3c1f-4e0a-9f8e-2d6c5b4a3f21"
    fields = compact(f"capture:store-0042:{trip}", {"storeId": "store-0042", "shoppingTripId": trip, "amount": USD},
                     {"reportJobId": f"feedback:store-0042:{trip}:1700000000", "settledAt": 1700000000}, "1700000000")
    assert fields and max(len(value) for value in fields) <= 64


def test_a_report_the_previous_payq_compacted_with_both_amounts_reads_back_as_written() -> None:
    stored = {"state": "succeeded", "attempts": "1", "in.totalAmount.amount": '"12.34"', "in.totalAmount.code": '"USD"',
              "in.settledAmount.amount": '"12.34"', "in.settledAmount.code": '"USD"', "out.status": '"Accepted"',
              "out.reasonCode": "null"}
    full = expand("feedback:s1:t1:1700000000", stored)
    assert json.loads(full["kwargs"]) == {"storeId": "s1", "shoppingTripId": "t1", "paymentStatusTime": 1700000000,
                                          "totalAmount": USD, "settledAmount": USD}
    assert json.loads(full["result"]) == {"status": "Accepted", "reasonCode": None}


@pytest.mark.parametrize("record", [
    # as the previous payq left a settled job, and as any job still live: read as they are
    {"op": "capture", "state": "succeeded", "kwargs": '{"storeId": "s1"}', "result": '{"reportJobId": "x"}'},
    {"op": "capture", "state": "running", "attempts": "1"},
    {"op": "refund", "state": "dead", "kwargs": "{}", "reason": "permanent"},
])
def test_a_record_that_is_not_compacted_reads_as_it_is(record: dict[str, str]) -> None:
    assert expand("capture:s1:t1", record) == record


def test_a_caller_that_does_not_know_the_kwargs_leaves_them_and_writes_the_result_whole() -> None:
    assert "kwargs" not in dropped(None) and "kwargs" in dropped({}) and dropped({}) == list(DROPPED)
    assert compact("refund:x", None, {"reconciliationId": "r"}) == ["result", '{"reconciliationId": "r"}']
