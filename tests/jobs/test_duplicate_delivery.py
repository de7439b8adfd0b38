"""A job whose message is delivered twice still has one outcome: one payment-status report per capture, one report sent."""

from __future__ import annotations

import json

import redis

from payapi.outcomes import Operation
from tasks.messages import QUEUES, build_message
from tasks.producer import Producer
from tests.jobs.helpers import USD_1, body, calls, queued_messages, record, wait_for_state
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess


def deliver_again(rdb: redis.Redis, operation: Operation, job_id: str) -> None:
    """Push a second copy of a recorded job's message, as a redelivery (or a double publish) would."""
    kwargs = json.loads(record(rdb, job_id)["kwargs"])
    rdb.lpush(QUEUES[operation], build_message(operation, job_id, kwargs))


def test_two_deliveries_running_at_once_report_once(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    # Both deliveries call the API (the first is slow enough for the second to
    # start meanwhile); the second is answered 1.5 s after the first, so its
    # success is seen in a later second. A report keyed by that second's time
    # would be a second report.
    api.set_faults({"rules": [
        {"endpoint": "capture", "sequence": ["pass"], "latency_ms": 500},
        {"endpoint": "capture", "latency_ms": 2000},
    ]})
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    deliver_again(rdb, "capture", job_id)
    start_worker()

    settled_at = json.loads(wait_for_state(rdb, job_id, "succeeded")["result"])["settledAt"]
    wait_for_state(rdb, f"feedback:s1:t1:{settled_at}", "succeeded")
    wait_for(lambda: [e["status"] for e in calls(api, "capture")] == [200, 200], what="both deliveries to be answered")
    wait_for(lambda: queued_messages(rdb) == 0, what="every message to be acknowledged")

    (report,) = [body(e) for e in calls(api, "feedback")]
    assert report["paymentStatusTime"] == settled_at
    assert len(api.trip("s1", "t1")["reports"]) == 1


def test_delivery_after_the_capture_succeeded_calls_nothing(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    worker = start_worker()
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    report_id = json.loads(wait_for_state(rdb, job_id, "succeeded")["result"])["reportJobId"]
    wait_for_state(rdb, report_id, "succeeded")

    deliver_again(rdb, "capture", job_id)
    wait_for(lambda: f"{job_id}: delivered again but already succeeded" in worker.log(), what="the duplicate to be handled")
    wait_for(lambda: queued_messages(rdb) == 0, what="the duplicate to be acknowledged")

    assert len(calls(api, "capture")) == 1
    assert len(calls(api, "feedback")) == 1
    assert record(rdb, job_id)["attempts"] == "1"


def test_copy_deferred_while_the_other_succeeds_does_not_run_again(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    # Both copies call the API (the first is slow enough for the second to start
    # meanwhile): the first is told to come back in 2 s, the other succeeds. When
    # the deferral comes due the job has already succeeded, and a report sent
    # again would be a second report of the same payment.
    api.set_faults({"rules": [
        {"endpoint": "feedback", "sequence": ["503 retryAfter 2"], "latency_ms": 300},
        {"endpoint": "feedback", "latency_ms": 500},
    ]})
    job_id = producer.enqueue_feedback(
        storeId="s1", shoppingTripId="t1", totalAmount=USD_1, settledAmount=USD_1, paymentStatusTime=1_700_000_000,
    )
    deliver_again(rdb, "feedback", job_id)
    start_worker()

    wait_for_state(rdb, job_id, "succeeded")
    deferred, succeeded = wait_for(lambda: calls(api, "feedback")[:2] if len(calls(api, "feedback")) >= 2 else None,
                                   what="both copies to call")
    assert (deferred["status"], succeeded["status"]) == (503, 200)
    assert succeeded["time"] - deferred["time"] < 2.0  # the second copy, not the first one's retry
    wait_for(lambda: rdb.zcard("payq:deferred") == 0, timeout=10, what="the deferral to come due")
    wait_for(lambda: queued_messages(rdb) == 0, what="every message to be acknowledged")

    assert len(calls(api, "feedback")) == 2
    assert len(api.trip("s1", "t1")["reports"]) == 1
    assert record(rdb, job_id)["state"] == "succeeded"
