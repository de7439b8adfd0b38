"""Transient faults are retried with backoff up to the attempt limit, then dead-lettered with the last error."""

from __future__ import annotations

import json

import redis

from tasks.producer import Producer
from tests.support.jobs import USD_1, calls, wait_for_state
from tests.support.payq_cli import PayqRunner
from tests.support.sandbox import SandboxProcess

BACKOFF = {"PAYQ_BACKOFF_BASE": "0.3", "PAYQ_BACKOFF_CAP": "0.6"}
SLACK = 2.0  # the mover's polls, the worker picking the job up twice, a busy machine


def test_capture_that_fails_twice_succeeds_on_the_third_attempt(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "sequence": ["500", "500"]}]})
    worker = start_worker(env=BACKOFF)

    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    done = wait_for_state(rdb, job_id, "succeeded")

    log = calls(api, "capture")
    assert [e["status"] for e in log] == [500, 500, 200]
    # full jitter: each wait is anywhere up to base * 2^(attempt-1), so only the ceiling is certain
    assert log[2]["time"] - log[0]["time"] < 0.3 + 0.6 + SLACK
    assert "HTTP 500 Internal Server Error: ServiceException; backoff after attempt 1" in worker.log()
    assert "HTTP 500 Internal Server Error: ServiceException; backoff after attempt 2" in worker.log()
    assert done["attempts"] == "3"
    wait_for_state(rdb, json.loads(done["result"])["reportJobId"], "succeeded")
    assert api.trip("s1", "t1")["captured"] == USD_1
    assert len(api.trip("s1", "t1")["reports"]) == 1


def test_capture_failing_every_attempt_is_dead_lettered_with_the_last_error(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker, payq: PayqRunner,
) -> None:
    # a dropped connection, a 503 without a usable delay, a 502: all transient
    api.set_faults({"rules": [{"endpoint": "capture", "sequence": ["reset", "503", "502", "500"]}]})
    start_worker(env={**BACKOFF, "PAYQ_MAX_ATTEMPTS": "3"})

    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    wait_for_state(rdb, job_id, "dead")

    assert [e["status"] for e in calls(api, "capture")] == [None, 503, 502]  # a reset answers nothing
    listed = payq("dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["jobId"] == job_id
    assert entry["reason"] == "retries-exhausted"
    assert entry["status"] == 502
    assert entry["attempts"] == 3
    assert "HTTP 502 Bad Gateway" in entry["error"]
    assert entry["request"] == {"storeId": "s1", "shoppingTripId": "t1", "amount": USD_1}
    assert calls(api, "feedback") == []
