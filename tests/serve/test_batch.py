"""POST /v1/jobs/batch: every job validated and its store checked first, then all enqueued or none (a conflicting resend alone is refused)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tasks.store import lanes
from tests.serve.helpers import REFUND_ID, STORE_B, TOKEN_A, cancel, capture, errors, feedback, post, problem, refund
from tests.support.serve import ServeProcess, written


def jobs(*items: dict[str, Any]) -> dict[str, Any]:
    return {"jobs": list(items)}


def test_a_batch_answers_each_job_in_order_and_again_is_200_with_the_same_ids(serve: ServeProcess, rdb: redis.Redis) -> None:
    batch = jobs(capture("t1"), cancel("t2"), refund("t1"), feedback("t3"))
    expected = ["capture:store-a:t1", "cancel:store-a:t2", f"refund:{REFUND_ID}", "feedback:store-a:t3:1700000000"]

    first = post(serve, "/v1/jobs/batch", batch)
    again = post(serve, "/v1/jobs/batch", batch)
    grown = post(serve, "/v1/jobs/batch", jobs(cancel("t4"), *batch["jobs"]))

    assert first.status_code == 202 and first.json() == {"jobs": [{"jobId": i, "created": True, "status": 202} for i in expected]}
    assert again.status_code == 200 and again.json() == {"jobs": [{"jobId": i, "created": False, "status": 200} for i in expected]}
    assert grown.status_code == 202
    assert [j["created"] for j in grown.json()["jobs"]] == [True, False, False, False, False]
    assert lanes.depths(rdb, ["payments.cancel"]) == {"payments.cancel": 2}


def test_the_same_job_twice_in_one_batch_is_created_once(serve: ServeProcess, rdb: redis.Redis) -> None:
    answer = post(serve, "/v1/jobs/batch", jobs(cancel("t1"), cancel("t1")))

    assert answer.status_code == 202
    assert answer.json()["jobs"] == [{"jobId": "cancel:store-a:t1", "created": True, "status": 202},
                                     {"jobId": "cancel:store-a:t1", "created": False, "status": 200}]
    assert lanes.depths(rdb, ["payments.cancel"]) == {"payments.cancel": 1}


def test_one_bad_job_among_many_is_422_naming_its_index_and_nothing_is_written(serve: ServeProcess, rdb: redis.Redis) -> None:
    batch = [cancel(f"t{i}") for i in range(10)]
    batch[7] = {**capture("t7", amount="1.001"), "storeId": "a b"}

    refused = problem(post(serve, "/v1/jobs/batch", {"jobs": batch}), 422)

    assert [(i, f) for i, f, _ in errors(refused)] == [(7, "storeId"), (7, "amount.amount")]
    assert written(rdb) == []


def test_a_trip_rule_broken_inside_a_batch_is_409_naming_the_job_and_nothing_is_written(serve: ServeProcess, rdb: redis.Redis) -> None:
    refused = problem(post(serve, "/v1/jobs/batch", jobs(capture("t1"), cancel("t2"), cancel("t1"))), 409)

    assert refused["errors"] == [{"index": 2, "field": "shoppingTripId", "rule": "cancel-after-capture",
                                  "detail": "trip store-a/t1 has a capture job (capture:store-a:t1): a captured trip is refunded, not cancelled"}]
    assert written(rdb) == []


def test_above_500_jobs_the_whole_batch_is_checked_before_any_chunk_is_written(serve: ServeProcess, rdb: redis.Redis) -> None:
    batch = [cancel(f"t{i}") for i in range(600)]
    batch[550] = capture("t3")  # t3 was cancelled in the first chunk

    refused = problem(post(serve, "/v1/jobs/batch", {"jobs": batch}), 409)

    assert [(i, f, r) for i, f, r in errors(refused)] == [(550, "shoppingTripId", "capture-after-cancel")]
    assert written(rdb) == [], "the first chunk was not written either"


def test_a_full_batch_of_1000_is_taken_in_chunks(serve: ServeProcess, rdb: redis.Redis) -> None:
    answer = post(serve, "/v1/jobs/batch", {"jobs": [cancel(f"t{i}") for i in range(1000)]})

    assert answer.status_code == 202
    assert [j["jobId"] for j in answer.json()["jobs"]] == [f"cancel:store-a:t{i}" for i in range(1000)]
    assert lanes.depths(rdb, ["payments.cancel"]) == {"payments.cancel": 1000}


@pytest.mark.parametrize(("body", "field", "rule"), [
    ({"jobs": []}, "jobs", "must hold 1 to 1000 jobs, not 0"),
    ({"jobs": [cancel(f"t{i}") for i in range(1001)]}, "jobs", "must hold 1 to 1000 jobs, not 1001"),
    ([cancel()], "(body)", 'must be a JSON object: {"jobs": [...]}'),
    ({}, "jobs", "is required"),
    ({"jobs": {"0": cancel()}}, "jobs", "must be a JSON array of jobs"),
    ({"jobs": [cancel()], "atomic": True}, "atomic", "is not a known field"),
], ids=["empty", "over-1000", "a-bare-array", "no-jobs", "jobs-not-an-array", "unknown-member"])
def test_a_batch_must_be_an_object_holding_1_to_1000_jobs(serve: ServeProcess, rdb: redis.Redis, body: Any, field: str, rule: str) -> None:
    refused = problem(post(serve, "/v1/jobs/batch", body), 422)

    assert errors(refused) == [(None, field, rule)]
    assert written(rdb) == []


def test_a_job_of_another_store_in_a_batch_is_403_naming_its_index_and_nothing_is_written(serve: ServeProcess, rdb: redis.Redis) -> None:
    batch = jobs(cancel("t1"), cancel("t2"), cancel("t3", store=STORE_B), cancel("t4"), capture("t5", store=STORE_B))

    refused = problem(post(serve, "/v1/jobs/batch", batch, token=TOKEN_A), 403)

    assert errors(refused) == [(2, "storeId", "this token may not use store 'store-b'"), (4, "storeId", "this token may not use store 'store-b'")]
    assert written(rdb) == []


def test_amounts_in_a_batch_are_exact(serve: ServeProcess, rdb: redis.Redis) -> None:
    raw = ('{"jobs": [{"operation": "capture", "storeId": "store-a", "shoppingTripId": "t1", "amount": {"amount": 19.99, "code": "USD"}},'
           ' {"operation": "capture", "storeId": "store-a", "shoppingTripId": "t2", "amount": {"amount": 0.30, "code": "USD"}}]}')

    assert post(serve, "/v1/jobs/batch", raw).status_code == 202
    assert [rdb.hget(f"payq:trip:store-a:{t}", "capture_cents") for t in ("t1", "t2")] == ["1999", "30"]
