"""Invalid bodies: each problem is named by field and rule (RFC 9457, 400/422), oversized ones are 413, and nothing is written."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from payq.serve.bodies import BATCH_BODY_LIMIT, JOB_BODY_LIMIT
from tests.serve.helpers import REFUND_ID, TOKEN_A, bearer, cancel, capture, errors, feedback, post, problem, raw_exchange, refund
from tests.support.serve import ServeProcess, written


def without(job: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k != name}


def amount(job: dict[str, Any], value: Any, field: str = "amount") -> str:
    """The job's JSON with ``value`` written verbatim as ``field``'s amount (a number, NaN, true ...)."""
    return json.dumps({**job, field: {"amount": "__AMOUNT__", "code": "USD"}}).replace('"__AMOUNT__"', value)


# (id, body, status, field, the rule's words)
CASES: list[tuple[str, Any, int, str, str]] = [
    ("not-json", "{", 400, "(body)", "the body is not valid JSON (at line 1, column 2)"),
    ("not-json-second-line", '{"operation": "cancel",\n "storeId": }', 400, "(body)", "the body is not valid JSON (at line 2, column 13)"),
    ("not-utf8", b'{"operation": "\xff"}', 400, "(body)", "the body is not valid UTF-8"),
    ("too-deep", "[" * 50_000, 400, "(body)", "nested too deep"),
    ("an-array", [cancel()], 422, "(body)", "must be a JSON object"),
    ("no-operation", without(cancel(), "operation"), 422, "operation", "is required"),
    ("unknown-operation", {**cancel(), "operation": "charge"}, 422, "operation", "must be one of capture, cancel, refund, feedback"),
    ("operation-not-a-string", {**cancel(), "operation": 1}, 422, "operation", "must be one of"),
    ("no-store", without(cancel(), "storeId"), 422, "storeId", "is required"),
    ("empty-store", cancel(store=""), 422, "storeId", "must not be empty"),
    ("store-with-a-space", cancel(store="a b"), 422, "storeId", "must match ^[0-9a-zA-Z_-]*$"),
    ("store-not-a-string", {**cancel(), "storeId": 5}, 422, "storeId", "must be a string"),
    ("trip-with-a-colon", cancel(trip="t:1"), 422, "shoppingTripId", "must match ^[0-9a-zA-Z_-]+$"),
    ("trip-too-long", cancel(trip="t" * 256), 422, "shoppingTripId", "must be at most 255 characters"),
    ("unknown-field", {**cancel(), "tip": 1}, 422, "tip", "is not a known field"),
    ("no-amount", without(capture(), "amount"), 422, "amount", "is required"),
    ("amount-three-places", amount(capture(), "19.999"), 422, "amount.amount", "must have at most 2 decimal places, got 19.999"),
    ("amount-zero-capture", amount(capture(), "0"), 422, "amount.amount", "must be greater than 0"),
    ("amount-negative-refund", amount(refund(), "-1.00"), 422, "amount.amount", "must be greater than 0"),
    ("amount-a-trillion", amount(capture(), "1000000000000"), 422, "amount.amount", "must be less than 1000000000000"),
    # a JSON number in exponent form is valid JSON, and a typo far more often than it is meant: refused, never 1000.00
    ("amount-exponent-number", amount(capture(), "1e3"), 422, "amount.amount", "must be a plain decimal number such as 19.99, not 1e3"),
    ("amount-exponent-string", amount(capture(), '"1e3"'), 422, "amount.amount", "must be digits with at most one decimal point"),
    ("amount-spaces", amount(capture(), '" 12.5 "'), 422, "amount.amount", "must be digits with at most one decimal point"),
    ("amount-plus-sign", amount(capture(), '"+1"'), 422, "amount.amount", "must be digits with at most one decimal point"),
    ("amount-minus-string", amount(refund(), '"-1"'), 422, "amount.amount", "must be digits with at most one decimal point"),
    ("amount-underscore", amount(capture(), '"1_000"'), 422, "amount.amount", "must be digits with at most one decimal point"),
    ("amount-hexadecimal", amount(capture(), '"0x10"'), 422, "amount.amount", "must be digits with at most one decimal point"),
    ("amount-no-leading-digit", amount(capture(), '".5"'), 422, "amount.amount", "must be digits with at most one decimal point"),
    ("amount-infinity-literal", amount(capture(), "Infinity"), 422, "amount.amount", "must be a plain decimal number such as 19.99, not Infinity"),
    ("amount-infinity-string", amount(capture(), '"Infinity"'), 422, "amount.amount", "must be digits with at most one decimal point"),
    ("feedback-time-exponent", json.dumps(feedback(at=1_700_000_000)).replace("1700000000", "1.7e9"), 422,
     "paymentStatusTime", "must be an integer"),
    ("amount-nan", amount(capture(), "NaN"), 422, "amount.amount", "must be a plain decimal number such as 19.99, not NaN"),
    ("amount-true", amount(capture(), "true"), 422, "amount.amount", "must be a JSON number or a string of digits such as \"19.99\", not a boolean"),
    ("amount-words", amount(capture(), '"ten"'), 422, "amount.amount", "must be digits with at most one decimal point"),
    ("currency-lower-case", capture(currency="usd"), 422, "amount.code", "must match ^[A-Z]{3}$"),
    ("refund-without-its-id", without(refund(), "refundRequestId"), 422, "refundRequestId", "is required over HTTP"),
    ("refund-id-null", {**refund(), "refundRequestId": None}, 422, "refundRequestId", "is required over HTTP"),
    ("refund-id-not-a-uuid", refund(request_id="r-1"), 422, "refundRequestId", "must match"),
    ("refund-unknown-reason", {**refund(), "refundReasonCode": "CHANGED_MIND"}, 422, "refundReasonCode", "must be one of"),
    ("feedback-without-time", without(feedback(), "paymentStatusTime"), 422, "paymentStatusTime", "is required over HTTP"),
    ("feedback-time-true", {**feedback(), "paymentStatusTime": True}, 422, "paymentStatusTime", "must be an integer, not a boolean"),
    ("feedback-time-in-ms", feedback(at=1_700_000_000_000_000), 422, "paymentStatusTime", "must be at most 253402300799"),
    ("feedback-two-currencies", {**feedback(), "settledAmount": {"amount": "3.00", "code": "EUR"}}, 422, "settledAmount.code",
     "must be the same currency as totalAmount.code"),
    ("feedback-negative", amount(feedback(), "-1", "totalAmount"), 422, "totalAmount.amount", "must be at least 0"),
]


@pytest.mark.parametrize(("body", "status", "field", "rule"), [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_a_bad_body_is_refused_naming_the_field_and_rule_and_nothing_is_written(
    serve: ServeProcess, rdb: redis.Redis, body: Any, status: int, field: str, rule: str,
) -> None:
    refused = problem(post(serve, "/v1/jobs", body), status)

    assert [(f, r) for _, f, r in errors(refused) if f == field and rule in r], errors(refused)
    assert written(rdb) == []


def test_every_problem_of_a_job_is_named_at_once(serve: ServeProcess, rdb: redis.Redis) -> None:
    job = {**refund(amount="19.999", request_id="r-1"), "storeId": "a b", "refundReasonCode": "X", "extra": 1}

    refused = problem(post(serve, "/v1/jobs", job), 422)

    assert sorted(f for _, f, _ in errors(refused)) == ["amount.amount", "extra", "refundReasonCode", "refundRequestId", "storeId"]
    assert refused["type"] == "urn:payq:problem:invalid-job" and refused["detail"] == "5 problem(s); nothing was enqueued"
    assert written(rdb) == []


@pytest.mark.parametrize("operation", [None, "charge"], ids=["no-operation", "unknown-operation"])
def test_a_job_without_a_known_operation_names_its_trip_ids_too(serve: ServeProcess, rdb: redis.Redis, operation: str | None) -> None:
    job = {**cancel(store="a b"), "operation": operation} if operation else without(cancel(store="a b", trip=""), "operation")

    refused = problem(post(serve, "/v1/jobs", job), 422)

    named = sorted(f for _, f, _ in errors(refused))
    assert named == (["operation", "shoppingTripId", "storeId"] if operation is None else ["operation", "storeId"])
    assert written(rdb) == []


def test_a_body_declared_larger_than_64_kib_is_413_before_it_is_read(serve: ServeProcess, rdb: redis.Redis) -> None:
    status, headers, answer = raw_exchange(serve, (
        f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {JOB_BODY_LIMIT + 1}\r\n\r\n"
    ).encode())

    assert status == 413 and headers["content-type"] == "application/problem+json"
    assert json.loads(answer)["detail"] == f"the body must be at most {JOB_BODY_LIMIT} bytes"
    assert written(rdb) == []


def test_a_chunked_body_is_413_once_it_passes_64_kib(serve: ServeProcess, rdb: redis.Redis) -> None:
    # a valid job padded with spaces past the limit, in chunks of 8 KiB and no Content-Length
    payload = json.dumps(cancel()).encode() + b" " * JOB_BODY_LIMIT
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i : i + 8192]), payload[i : i + 8192]) for i in range(0, len(payload), 8192))
    status, _, answer = raw_exchange(serve, (
        f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode() + chunks + b"0\r\n\r\n")

    assert status == 413, answer
    assert written(rdb) == []


def test_a_batch_declared_larger_than_4_mib_is_413(serve: ServeProcess, rdb: redis.Redis) -> None:
    status, _, answer = raw_exchange(serve, (
        f"POST /v1/jobs/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Length: {BATCH_BODY_LIMIT + 1}\r\n\r\n"
    ).encode())

    assert status == 413 and json.loads(answer)["detail"] == f"the body must be at most {BATCH_BODY_LIMIT} bytes"
    assert written(rdb) == []


def test_a_job_just_under_the_limit_is_taken(serve: ServeProcess) -> None:
    body = json.dumps(cancel())
    answer = serve.request("POST", "/v1/jobs", data=body + " " * (JOB_BODY_LIMIT - len(body)), headers=bearer(TOKEN_A))

    assert answer.status_code == 202, answer.text


def test_an_unauthenticated_oversized_body_is_401_not_read(serve: ServeProcess) -> None:
    status, headers, _ = raw_exchange(serve, f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: {JOB_BODY_LIMIT * 4}\r\n\r\n".encode())

    assert status == 401 and headers["www-authenticate"] == 'Bearer realm="payq"'


def test_a_refund_request_id_in_upper_case_is_refused_like_the_cli_refuses_it(serve: ServeProcess) -> None:
    refused = problem(post(serve, "/v1/jobs", refund(request_id=REFUND_ID.upper())), 422)

    assert [f for _, f, _ in errors(refused)] == ["refundRequestId"]
