"""Every attempt of a refund, and its replay from the dead-letter store, carries the same refundRequestId."""

from __future__ import annotations

import json

import redis

from config.settings import Settings
from tasks.producer import Producer
from tests.support.jobs import body, calls, capture_directly, wait_for_state
from tests.support.payq_cli import PayqRunner
from tests.support.sandbox import SandboxProcess

TEN = {"amount": "10.00", "code": "USD"}
FOUR = {"amount": "4.00", "code": "USD"}


def refund_ids(api: SandboxProcess) -> list[str]:
    return [body(e)["refundRequestId"] for e in calls(api, "refund")]


def test_refund_enqueued_without_an_id_sends_the_one_made_at_enqueue_on_every_attempt(
    settings: Settings, producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    capture_directly(settings, "s1", "t1", TEN)
    api.set_faults({"rules": [{"endpoint": "refund", "sequence": ["500", "503"]}]})
    start_worker()

    job_id = producer.enqueue_refund(storeId="s1", shoppingTripId="t1", amount=FOUR, refundReasonCode="DAMAGED_ITEM")
    wait_for_state(rdb, job_id, "succeeded")

    made_at_enqueue = job_id.removeprefix("refund:")
    assert [e["status"] for e in calls(api, "refund")] == [500, 503, 200]
    assert refund_ids(api) == [made_at_enqueue] * 3
    (refund,) = api.trip("s1", "t1")["refunds"]
    assert refund["refundRequestId"] == made_at_enqueue


def test_replayed_refund_sends_the_id_made_at_enqueue_again(
    settings: Settings, producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker, payq: PayqRunner,
) -> None:
    capture_directly(settings, "s1", "t1", TEN)
    api.set_faults({"rules": [{"endpoint": "refund", "sequence": ["500", "500", "400"]}]})
    start_worker()

    job_id = producer.enqueue_refund(storeId="s1", shoppingTripId="t1", amount=FOUR, refundReasonCode="DAMAGED_ITEM")
    wait_for_state(rdb, job_id, "dead")
    replayed = payq("dlq", "replay", job_id)
    assert replayed.returncode == 0, replayed.stderr
    done = wait_for_state(rdb, job_id, "succeeded")

    made_at_enqueue = job_id.removeprefix("refund:")
    assert [e["status"] for e in calls(api, "refund")] == [500, 500, 400, 200]
    assert refund_ids(api) == [made_at_enqueue] * 4
    (refund,) = api.trip("s1", "t1")["refunds"]
    assert refund["refundRequestId"] == made_at_enqueue
    assert json.loads(done["result"]) == {"reconciliationId": refund["reconciliationId"]}
    assert json.loads(payq("dlq", "list", "--json").stdout) == []
