"""The job store's atomic steps against a real Redis, where a worker's timing cannot reach them."""

from __future__ import annotations

import json

import redis

from tasks.producer import Producer, prepare
from tasks.redis import keys
from tasks.store import lanes
from tasks.store.records import JobStore, NewJob
from tests.support.jobs import USD_1, record
from tests.support.names import queue_of


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
    assert [json.loads(m)["headers"]["id"] for m in lanes.messages(rdb, queue_of("feedback"))] == ["feedback:s1:t1:1700000000"]
    assert record(rdb, "feedback:s1:t1:1700000000")["state"] == "queued"
