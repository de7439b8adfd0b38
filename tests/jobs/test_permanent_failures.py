"""A request the API refuses for good is dead-lettered after exactly one call, with the API's status and errorMsg."""

from __future__ import annotations

import json

import redis

from tasks.producer import Producer
from tests.support.jobs import USD_1, calls, wait_for_state
from tests.support.payq_cli import PayqRunner
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess

REFUSAL = "BadRequestException: amount.code: not accepted for this store"


def test_capture_refused_with_400_is_dead_lettered_after_one_call(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker, payq: PayqRunner,
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "fault": {"status": 400, "body": {"errorMsg": REFUSAL}}}]})
    start_worker()

    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    wait_for_state(rdb, job_id, "dead")

    assert [e["status"] for e in calls(api, "capture")] == [400]
    listed = payq("dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert (entry["jobId"], entry["operation"], entry["reason"], entry["status"], entry["attempts"]) == (
        job_id, "capture", "permanent", 400, 1,
    )
    assert REFUSAL in entry["error"]
    assert entry["request"] == {"storeId": "s1", "shoppingTripId": "t1", "amount": USD_1}
    assert entry["worker"]
    assert calls(api, "feedback") == []


def test_capture_of_a_trip_the_api_does_not_know_is_dead_lettered_after_one_call(
    redis_url: str, producer: Producer, rdb: redis.Redis, payq: PayqRunner,
) -> None:
    with SandboxProcess() as strict_api:  # no --auto-register: every trip is unknown
        worker = WorkerProcess(redis_url, strict_api.url)
        try:
            job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="nobody", amount=USD_1)
            wait_for_state(rdb, job_id, "dead")
            assert [e["status"] for e in calls(strict_api, "capture")] == [400]
        finally:
            worker.kill()

    (entry,) = json.loads(payq("dlq", "list", "--json", "--reason", "permanent").stdout)
    assert (entry["jobId"], entry["status"], entry["attempts"]) == (job_id, 400, 1)
    assert entry["error"] == "HTTP 400 Bad Request: UnknownShoppingTrip: no shopping trip 'nobody' in store 's1'"
    assert (entry["kind"], entry["errorType"]) == ("refused", "UnknownShoppingTrip")
    assert entry["errorMsg"] == "UnknownShoppingTrip: no shopping trip 'nobody' in store 's1'"
