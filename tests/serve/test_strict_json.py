"""Strict JSON at the intake: a repeated key, a huge integer and a bad path parameter are each refused naming the field; nothing is written."""

from __future__ import annotations

import json

import pytest
import redis

from payapi.wire import REPEATED_KEY
from tests.serve.helpers import STORE_A, TOKEN_AB, cancel, errors, get, post, problem
from tests.support.serve import ServeProcess, written

# the same job three ways, each naming one key twice: a reader that takes the first value sees another job than one that takes the last
REPEATED = [
    pytest.param('{"operation": "capture", "storeId": "store-a", "shoppingTripId": "dup-1",'
                 ' "amount": {"amount": "1.00", "amount": "999.00", "code": "USD"}}', "amount.amount", id="amount.amount"),
    pytest.param('{"operation": "capture", "storeId": "store-a", "shoppingTripId": "dup-1", "storeId": "store-b",'
                 ' "amount": {"amount": "1.00", "code": "USD"}}', "storeId", id="storeId"),
    pytest.param('{"operation": "cancel", "storeId": "store-a", "shoppingTripId": "dup-1", "operation": "capture",'
                 ' "amount": {"amount": "1.00", "code": "USD"}}', "operation", id="operation"),
]


@pytest.mark.parametrize(("body", "key"), REPEATED)
def test_a_job_that_repeats_a_key_is_refused_naming_it(serve: ServeProcess, rdb: redis.Redis, body: str, key: str) -> None:
    refused = problem(post(serve, "/v1/jobs", body, token=TOKEN_AB), 422)

    assert errors(refused) == [(None, key, REPEATED_KEY)]
    assert refused["type"] == "urn:payq:problem:invalid-job"
    assert written(rdb) == []


@pytest.mark.parametrize(("body", "key"), REPEATED)
def test_a_batch_line_that_repeats_a_key_is_refused_by_index_and_nothing_is_enqueued(
    serve: ServeProcess, rdb: redis.Redis, body: str, key: str,
) -> None:
    refused = problem(post(serve, "/v1/jobs/batch", f'{{"jobs": [{json.dumps(cancel())}, {body}]}}', token=TOKEN_AB), 422)

    assert errors(refused) == [(1, key, REPEATED_KEY)]
    assert written(rdb) == [], "the valid job before it is not enqueued either"


def test_a_batch_that_repeats_jobs_is_refused_naming_jobs(serve: ServeProcess, rdb: redis.Redis) -> None:
    body = f'{{"jobs": [{json.dumps(cancel(trip="a"))}], "jobs": [{json.dumps(cancel(trip="b"))}]}}'

    assert errors(problem(post(serve, "/v1/jobs/batch", body), 422)) == [(None, "jobs", REPEATED_KEY)]
    assert written(rdb) == []


# past Python's 4,300-digit int limit: a number all the same, refused by its field's rule, not as malformed JSON
HUGE = "9" * 5000


@pytest.mark.parametrize(("body", "field", "rule"), [
    pytest.param(f'{{"operation": "capture", "storeId": "store-a", "shoppingTripId": "t1", "amount": {{"amount": {HUGE}, "code": "USD"}}}}',
                 "amount.amount", "must be less than 1000000000000", id="amount"),
    pytest.param(f'{{"operation": "feedback", "storeId": "store-a", "shoppingTripId": "t1", "paymentStatusTime": {HUGE},'
                 ' "totalAmount": {"amount": "1.00", "code": "USD"}, "settledAmount": {"amount": "1.00", "code": "USD"}}',
                 "paymentStatusTime", "must be at most 253402300799", id="paymentStatusTime"),
    pytest.param(f'{{"operation": "cancel", "storeId": {HUGE}, "shoppingTripId": "t1"}}', "storeId", "must be a string", id="storeId"),
])
def test_a_huge_integer_is_refused_naming_its_field(serve: ServeProcess, rdb: redis.Redis, body: str, field: str, rule: str) -> None:
    refused = problem(post(serve, "/v1/jobs", body), 422)

    assert errors(refused) == [(None, field, rule)]
    assert HUGE[:100] not in json.dumps(refused)
    assert written(rdb) == []


@pytest.mark.parametrize(("path", "field"), [
    pytest.param("/v1/trips/a%20b/t1", "storeId", id="store-with-a-space"),
    pytest.param(f"/v1/trips/{STORE_A}/t:1", "shoppingTripId", id="trip-with-a-colon"),
    pytest.param(f"/v1/trips/{STORE_A}/{'t' * 256}", "shoppingTripId", id="trip-too-long"),
    pytest.param("/v1/jobs/capture:a%3Cscript%3E:t1", "jobId", id="job-id-with-markup"),
    pytest.param("/v1/jobs/charge:store-a:t1", "jobId", id="job-id-of-no-operation"),
])
def test_a_bad_path_parameter_is_refused_naming_it_without_echoing_it(serve: ServeProcess, path: str, field: str) -> None:
    answer = get(serve, path)
    refused = problem(answer, 422)

    assert [f for _, f, _ in errors(refused)] == [field]
    assert refused["type"] == "urn:payq:problem:invalid-request"
    assert not any(bad in answer.text for bad in ("a b", "t:1", "t" * 256, "<script>", "charge")), answer.text


def test_get_on_the_batch_route_is_405_not_a_job_named_batch(serve: ServeProcess) -> None:
    answer = get(serve, "/v1/jobs/batch")

    assert problem(answer, 405)["type"] == "urn:payq:problem:method-not-allowed"
    assert answer.headers["Allow"] == "POST"
