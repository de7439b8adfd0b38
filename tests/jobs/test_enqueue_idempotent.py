"""Enqueueing the same job again returns the same id and publishes nothing; a job file enqueues one id a line."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from payapi.operations import QUEUES
from tasks.producer import Producer
from tasks.store import lanes
from tests.support.jobs import USD_1, record
from tests.support.payq_cli import PayqRunner

REFUND_ID = "5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a"


def depths(rdb: redis.Redis) -> dict[str, int]:
    return lanes.depths(rdb, QUEUES)


def test_same_job_twice_has_one_id_and_one_message(producer: Producer, rdb: redis.Redis) -> None:
    first = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    again = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount={"amount": "1", "code": "USD"})

    assert first == again == "capture:s1:t1"
    assert depths(rdb)["payments.capture"] == 1


def test_same_job_twice_from_the_cli_prints_one_id_and_publishes_once(payq: PayqRunner, rdb: redis.Redis) -> None:
    args = ("enqueue", "refund", "--store-id", "s1", "--trip-id", "t1", "--amount", "5.00", "--currency", "USD",
            "--reason", "DAMAGED_ITEM", "--refund-request-id", REFUND_ID)
    first, again = payq(*args), payq(*args)

    assert (first.returncode, again.returncode) == (0, 0)
    assert first.stdout == again.stdout == f"refund:{REFUND_ID}\n"
    assert depths(rdb)["payments.refund"] == 1


def test_job_file_prints_one_id_a_line_and_enqueues_each_job_once(payq: PayqRunner, rdb: redis.Redis, tmp_path: Path) -> None:
    lines = [
        {"operation": "capture", "storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "12.34", "code": "USD"}},
        {"operation": "cancel", "storeId": "s1", "shoppingTripId": "t2"},
        {"operation": "refund", "storeId": "s1", "shoppingTripId": "t3", "amount": {"amount": "5.00", "code": "USD"},
         "refundReasonCode": "OTHER", "refundRequestId": REFUND_ID},
        {"operation": "feedback", "storeId": "s1", "shoppingTripId": "t4", "totalAmount": {"amount": "3.00", "code": "USD"},
         "settledAmount": {"amount": "3.00", "code": "USD"}, "paymentStatusTime": 1_700_000_000},
    ]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))

    first = payq("enqueue", "--file", str(jobs))
    again = payq("enqueue", "--file", str(jobs))

    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    expected = ["capture:s1:t1", "cancel:s1:t2", f"refund:{REFUND_ID}", "feedback:s1:t4:1700000000"]
    assert first.stdout.splitlines() == again.stdout.splitlines() == expected
    assert depths(rdb) == {"payments.capture": 1, "payments.cancel": 1, "payments.refund": 1, "payments.feedback": 1}
    assert json.loads(record(rdb, "capture:s1:t1")["kwargs"]) == {k: v for k, v in lines[0].items() if k != "operation"}
