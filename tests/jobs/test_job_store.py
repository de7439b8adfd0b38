"""The job store's atomic steps against a real Redis, where a worker's timing cannot reach them."""

from __future__ import annotations

import json

import redis

from tasks.producer import Producer, prepare
from tasks.redis import keys
from tasks.store.records import JobStore, NewJob
from tests.support.jobs import USD_1, record
from tests.support.names import queue_of

CUTOFF = 60.0


def test_revive_leaves_a_job_whose_message_still_waits_in_its_queue(producer: Producer, rdb: redis.Redis) -> None:
    store = JobStore(rdb, 86400)
    waiting = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    later = record(rdb, waiting)
    # an hour on, the message is still queued (a backlog, or no worker running): a copy would run it twice
    assert store.revive_lost(float(later["enqueued_at"]) + 3600, CUTOFF, 100) == 0
    assert rdb.llen(queue_of("capture")) == 1
    assert rdb.zscore(keys.ACTIVE, waiting) is not None, "still watched: its message may yet be lost"


def test_revive_republishes_a_queued_job_once_its_queue_is_empty_and_leaves_a_running_one_to_its_lease(
    producer: Producer, rdb: redis.Redis,
) -> None:
    store = JobStore(rdb, 86400)
    lost = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    running = producer.enqueue_capture(storeId="s1", shoppingTripId="t2", amount=USD_1)
    now = float(record(rdb, lost)["enqueued_at"])
    rdb.delete(queue_of("capture"))  # both messages taken by workers' BRPOPs, neither recorded as unacknowledged
    store.begin(running, "capture", json.loads(record(rdb, running)["kwargs"]), "w@h", now, "tag-1", 30, holder="h1", claim="c1")

    assert store.revive_lost(now + CUTOFF / 2, CUTOFF, 100) == 0, "nothing is older than the cutoff yet"
    # the running job has a lease: the lease sweep gives it back when its holder stops renewing it
    assert store.revive_lost(now + 2 * CUTOFF, CUTOFF, 100) == 1
    assert [json.loads(m)["headers"]["id"] for m in rdb.lrange(queue_of("capture"), 0, -1)] == [lost]
    assert record(rdb, running)["state"] == "running"
    # a running job without a lease (a record from before leases) is still the sweep's
    rdb.zrem(keys.LEASES, running)
    assert store.revive_lost(now + 2 * CUTOFF, CUTOFF, 100) == 1
    assert record(rdb, running)["state"] == "queued"


def test_a_capture_settles_once_and_chains_one_report_whatever_the_second_success_says(
    producer: Producer, rdb: redis.Redis,
) -> None:
    store = JobStore(rdb, 86400)
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)

    def report_at(settled_at: int) -> NewJob:
        return prepare("feedback", {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": USD_1, "settledAmount": USD_1,
                                    "paymentStatusTime": settled_at})

    assert store.finish_capture(job_id, 1_700_000_000, {"settledAt": 1_700_000_000}, report_at(1_700_000_000), 1_700_000_000.5) == 1_700_000_000
    # a second delivery that succeeded a second later is told the first time, and writes nothing
    assert store.finish_capture(job_id, 1_700_000_001, {"settledAt": 1_700_000_001}, report_at(1_700_000_001), 1_700_000_001.5) == 1_700_000_000
    # called again with that time (as the worker does), it changes nothing either: the report exists already
    assert store.finish_capture(job_id, 1_700_000_000, {"settledAt": 1_700_000_000}, report_at(1_700_000_000), 1_700_000_002) == 1_700_000_000

    assert record(rdb, job_id)["state"] == "succeeded"
    assert rdb.zscore(keys.ACTIVE, job_id) is None
    assert [json.loads(m)["headers"]["id"] for m in rdb.lrange(queue_of("feedback"), 0, -1)] == ["feedback:s1:t1:1700000000"]
    assert record(rdb, "feedback:s1:t1:1700000000")["state"] == "queued"
