"""POST /v1/jobs: the same job again is the same id and runs once; amounts reach the API exactly as sent."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
import redis

from payapi.operations import Operation
from tasks.store import lanes
from tests.serve.helpers import cancel, capture, feedback, post, refund
from tests.support.jobs import body, calls, record, wait_for_state
from tests.support.sandbox import SandboxProcess
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess


def test_the_same_job_again_is_200_with_the_same_id_and_runs_once(
    serve: ServeProcess, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    first = post(serve, "/v1/jobs", capture(amount="10.00"))
    # the same job, its amount written another way: the same id, nothing new
    again = post(serve, "/v1/jobs", '{"operation": "capture", "storeId": "store-a", "shoppingTripId": "t1", "amount": {"amount": 10, "code": "USD"}}')

    assert (first.status_code, first.json()) == (202, {"jobId": "capture:store-a:t1", "created": True})
    assert first.headers["Location"] == "/v1/jobs/capture:store-a:t1"
    assert (again.status_code, again.json()) == (200, {"jobId": "capture:store-a:t1", "created": False})
    assert "Location" not in again.headers
    assert lanes.depths(rdb, ["payments.capture"]) == {"payments.capture": 1}

    start_worker()
    wait_for_state(rdb, "capture:store-a:t1", "succeeded")
    after = post(serve, "/v1/jobs", capture(amount="10.00"))

    assert (after.status_code, after.json()) == (200, {"jobId": "capture:store-a:t1", "created": False})
    assert len(calls(api, Operation.CAPTURE)) == 1, "the API was called once"


def test_an_amount_sent_as_the_json_number_19_99_reaches_the_api_as_19_99(
    serve: ServeProcess, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    raw = '{"operation": "capture", "storeId": "store-a", "shoppingTripId": "t1", "amount": {"amount": 19.99, "code": "USD"}}'
    assert post(serve, "/v1/jobs", raw).status_code == 202
    start_worker()
    wait_for_state(rdb, "capture:store-a:t1", "succeeded")

    (sent,) = calls(api, Operation.CAPTURE)
    assert re.search(r'"amount":\{"amount":19\.99,"code":"USD"\}', sent["body"]), sent["body"]
    assert json.loads(sent["body"], parse_float=Decimal)["amount"]["amount"] == Decimal("19.99")
    assert json.loads(record(rdb, "capture:store-a:t1")["kwargs"])["amount"] == {"amount": "19.99", "code": "USD"}
    # the report is chained when the capture succeeds, and called after: wait for it, not just for the capture
    wait_for_state(rdb, json.loads(record(rdb, "capture:store-a:t1")["result"])["reportJobId"], "succeeded")
    report = body(calls(api, Operation.FEEDBACK)[0])
    assert report["totalAmount"]["amount"] == report["settledAmount"]["amount"] == 19.99


@pytest.mark.parametrize(("written", "kept"), [
    ("19.99", "19.99"), ('"19.99"', "19.99"), ("19.990", "19.99"), ("0.10", "0.10"), ("7", "7"), ('"007"', "7"),
    ("999999999999.99", "999999999999.99"), ('"0.3"', "0.3"),
])
def test_amounts_are_kept_exactly_as_numbers_or_strings(serve: ServeProcess, rdb: redis.Redis, written: str, kept: str) -> None:
    raw = f'{{"operation": "capture", "storeId": "store-a", "shoppingTripId": "t1", "amount": {{"amount": {written}, "code": "USD"}}}}'

    assert post(serve, "/v1/jobs", raw).status_code == 202
    assert json.loads(record(rdb, "capture:store-a:t1")["kwargs"])["amount"]["amount"] == kept


def test_every_operation_is_taken_and_named_by_its_natural_key(serve: ServeProcess, rdb: redis.Redis) -> None:
    jobs = {"capture:store-a:t1": capture(), "cancel:store-a:t2": cancel("t2"),
            "refund:5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a": refund(), "feedback:store-a:t3:1700000000": feedback("t3")}

    for job_id, job in jobs.items():
        answer = post(serve, "/v1/jobs", job)
        assert (answer.status_code, answer.json()) == (202, {"jobId": job_id, "created": True})
        assert record(rdb, job_id)["op"] == job["operation"]
