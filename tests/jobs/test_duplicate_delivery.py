"""A job whose message is delivered twice still has one outcome: one payment-status report per capture, one report sent."""

from __future__ import annotations

import json
import time

import redis

from config.settings import Settings
from payapi.operations import Operation
from tasks.jobs.messages import build_message
from tasks.producer import Producer
from tasks.store.records import JobStore
from tests.support.jobs import USD_1, body, calls, queued_messages, record, take_message, wait_for_state
from tests.support.names import queue_of
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess


def deliver_again(rdb: redis.Redis, operation: Operation, job_id: str) -> None:
    """Push a second copy of a recorded job's message, as a redelivery (or a double publish) would."""
    kwargs = json.loads(record(rdb, job_id)["kwargs"])
    rdb.lpush(queue_of(operation), build_message(operation, job_id, kwargs))


def test_a_copy_delivered_while_another_delivery_runs_the_job_calls_nothing(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    # The first delivery's call takes 1.5 s, long enough for the copy to be taken meanwhile by another thread.
    api.set_faults({"rules": [{"endpoint": "capture", "latency_ms": 1500}]})
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    deliver_again(rdb, "capture", job_id)
    worker = start_worker()

    wait_for(lambda: f"{job_id}: delivered again while another worker holds it" in worker.log(), what="the copy to be turned away")
    settled_at = json.loads(wait_for_state(rdb, job_id, "succeeded")["result"])["settledAt"]
    wait_for_state(rdb, f"feedback:s1:t1:{settled_at}", "succeeded")
    wait_for(lambda: queued_messages(rdb) == 0, what="every message to be acknowledged")

    assert len(calls(api, "capture")) == 1
    assert [body(e)["paymentStatusTime"] for e in calls(api, "feedback")] == [settled_at]
    assert record(rdb, job_id)["attempts"] == "1"


def test_the_same_message_back_from_a_dead_holder_calls_nothing_until_its_lease_lapses_then_runs_once(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    # kombu puts a message back with its delivery tag unchanged (a dead worker's restore, a requeue when
    # Redis went away mid-job). The tag says nothing of whether the holder lives: only its lease does.
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    raw = take_message(rdb, queue_of("capture"))
    assert raw is not None
    message = json.loads(raw)
    # what the worker that took it did before it died: claim the job, under the default lease
    lease = Settings.model_fields["lease_seconds"].default
    JobStore(rdb, 86400).begin(job_id, "capture", "gone@host", time.time(),
                               message["properties"]["delivery_tag"], lease, holder="gone.1.abc", claim="c-gone")
    assert record(rdb, job_id)["state"] == "running"
    message["properties"]["delivery_info"]["redelivered"] = True
    rdb.lpush(queue_of("capture"), json.dumps(message))
    worker = start_worker()

    wait_for(lambda: f"{job_id}: delivered again while another worker holds it" in worker.log(), what="the copy to be turned away")
    assert calls(api, "capture") == []
    # the dead holder's lease lapses; the worker's housekeeping gives the job back once it has beaten for a lease
    wait_for_state(rdb, job_id, "succeeded", timeout=3 * lease)
    assert [e["status"] for e in calls(api, "capture")] == [200]
    assert record(rdb, job_id)["attempts"] == "2"
    assert record(rdb, job_id)["recovered_from"] == "gone.1.abc"


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


def test_a_copy_taken_while_the_first_delivery_is_deferred_leaves_the_retry_to_the_deferral(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    # The first delivery is told to come back in 2 s; the copy, taken while that call is in flight, must not
    # call at all: two calls in flight for one job could both succeed, and a report sent twice is two reports.
    api.set_faults({"rules": [
        {"endpoint": "feedback", "sequence": ["503 retryAfter 2"], "latency_ms": 1000},
    ]})
    job_id = producer.enqueue_feedback(
        storeId="s1", shoppingTripId="t1", totalAmount=USD_1, settledAmount=USD_1, paymentStatusTime=1_700_000_000,
    )
    deliver_again(rdb, "feedback", job_id)
    worker = start_worker()

    wait_for(lambda: f"{job_id}: delivered again while another worker holds it" in worker.log(), what="the copy to be turned away")
    wait_for_state(rdb, job_id, "succeeded", timeout=20)
    wait_for(lambda: queued_messages(rdb) == 0, what="every message to be acknowledged")

    first, retry = calls(api, "feedback")
    assert (first["status"], retry["status"]) == (503, 200)
    assert retry["time"] - first["time"] >= 2.0, "the second call is the deferral's, after the Retry-After"
    assert len(api.trip("s1", "t1")["reports"]) == 1
