"""Strict JSON, as pure tables: repeated keys named by path, huge integers kept as numbers, and the schema's patterns equal to the rules."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payapi import wire
from payapi.errors import InvalidRequest
from payapi.models import CaptureRequest, FeedbackRequest, amount_pattern, parse_request
from payq.serve.schemas import job_id_pattern
from tasks.producer import prepare


@pytest.mark.parametrize(("text", "paths"), [
    pytest.param('{"amount": {"amount": "1.00", "amount": "999.00"}}', [("amount", "amount")], id="nested"),
    pytest.param('{"storeId": "a", "storeId": "a"}', [("storeId",)], id="same-value-twice"),
    pytest.param('{"k": 1, "k": 2, "k": 3}', [("k",)], id="three-times-named-once"),
    pytest.param('{"jobs": [{}, {"operation": "a", "x": {"y": 1, "y": 2}, "operation": "b"}]}',
                 [("jobs", 1, "operation"), ("jobs", 1, "x", "y")], id="in-an-array-by-index"),
    pytest.param('[{"a": 1}, {"a": 1, "a": 2}]', [(1, "a")], id="under-a-top-level-array"),
    pytest.param('{"a": {"b": 1, "b": 2}, "a": 3}', [("a",)], id="inside-a-value-a-repeat-dropped"),
])
def test_every_repeated_key_is_named_by_its_path(text: str, paths: list[tuple[Any, ...]]) -> None:
    with pytest.raises(wire.RepeatedKeys) as refused:
        wire.loads_input(text)

    assert refused.value.paths == paths
    assert isinstance(refused.value, InvalidRequest)
    assert [p.field for p in refused.value.problems] == [wire.dotted(p) for p in paths]


@pytest.mark.parametrize("text", ['{"a": {"a": 1}}', '[{"a": 1}, {"a": 1}]', '{"a": 1, "A": 2}', '{}'])
def test_the_same_key_in_different_objects_is_not_a_repeat(text: str) -> None:
    assert wire.loads_input(text) is not None


def test_an_integer_past_pythons_digit_limit_is_read_as_a_decimal() -> None:
    assert wire.loads_input('{"n": ' + "7" * 5000 + "}") == {"n": Decimal("7" * 5000)}
    assert type(wire.loads_input("12")) is int


# --- the OpenAPI document's amount patterns say exactly which strings the models take ----------------------------

def _taken(model: type[Any], fields: dict[str, Any]) -> bool:
    try:
        parse_request(model, fields)
    except InvalidRequest:
        return False
    return True


def _capture(amount: str) -> dict[str, Any]:
    return {"storeId": "s", "shoppingTripId": "t", "amount": {"amount": amount, "code": "USD"}}


def _report(amount: str) -> dict[str, Any]:
    usd = {"amount": amount, "code": "USD"}
    return {"storeId": "s", "shoppingTripId": "t", "totalAmount": usd, "settledAmount": usd, "paymentStatusTime": 0}


def _same_verdicts(text: str) -> None:
    assert bool(re.fullmatch(amount_pattern(positive=True), text)) == _taken(CaptureRequest, _capture(text)), text
    assert bool(re.fullmatch(amount_pattern(positive=False), text)) == _taken(FeedbackRequest, _report(text)), text


@pytest.mark.parametrize("text", ["0", "0.00", "0.01", "0.10", "0.001", "0.010", "19.990", "19.991", "007.50", "999999999999.99",
                                  "1000000000000", "0000000000001000000000000", "000999999999999", ".5", "5.", "", "1.2.3"])
def test_the_string_patterns_take_exactly_what_the_models_take_at_the_edges(text: str) -> None:
    _same_verdicts(text)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789.", max_size=20) | st.from_regex(r"\A0*[0-9]{0,14}(\.[0-9]{0,4})?\Z"))
def test_the_string_patterns_take_exactly_what_the_models_take(text: str) -> None:
    _same_verdicts(text)


# --- a job's id in the path: the pattern takes every id payq makes, and nothing a job could not be --------------

@pytest.mark.parametrize(("operation", "fields"), [
    ("capture", _capture("1")),
    ("cancel", {"storeId": "S-1_x", "shoppingTripId": "t" * 255}),
    ("refund", {**_capture("1"), "refundReasonCode": "OTHER"}),
    ("refund", {**_capture("1"), "refundReasonCode": "OTHER", "refundRequestId": "5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a"}),
    ("feedback", _report("1")),
    ("feedback", {**_report("1"), "paymentStatusTime": 253402300799}),
])
def test_every_job_id_payq_makes_matches_the_path_pattern(operation: str, fields: dict[str, Any]) -> None:
    assert re.fullmatch(job_id_pattern(), prepare(operation, fields).job_id)


@pytest.mark.parametrize("job_id", ["batch", "capture:s", "capture:s:t:u", "charge:s:t", "capture::t", "refund:not-a-uuid",
                                    "feedback:s:t:1.5", "feedback:s:t:1234567890123", "cancel:s:" + "t" * 256, "capture:s:t\n"])
def test_the_path_pattern_refuses_what_no_job_id_can_be(job_id: str) -> None:
    assert not re.fullmatch(job_id_pattern(), job_id)
