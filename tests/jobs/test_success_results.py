"""What a successful job keeps: a refund's reconciliationId, a report's verdict; a Rejected report is dead-lettered."""

from __future__ import annotations

import json

import redis

from config.settings import Settings
from tasks.producer import Producer
from tests.support.jobs import USD_1, calls, capture_directly, wait_for_state
from tests.support.payq_cli import PayqRunner
from tests.support.sandbox import SandboxProcess


def test_refund_keeps_its_reconciliation_id(
    settings: Settings, producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker, payq: PayqRunner,
) -> None:
    capture_directly(settings, "s1", "t1", {"amount": "10.00", "code": "USD"})
    start_worker()

    job_id = producer.enqueue_refund(
        storeId="s1", shoppingTripId="t1", amount={"amount": "4.00", "code": "USD"}, refundReasonCode="DAMAGED_ITEM",
    )
    wait_for_state(rdb, job_id, "succeeded")

    (refund,) = api.trip("s1", "t1")["refunds"]
    shown = payq("job", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["state"] == "succeeded"
    assert view["result"] == {"reconciliationId": refund["reconciliationId"]}
    assert job_id == f"refund:{refund['refundRequestId']}"


def test_accepted_report_keeps_status_and_reason_code(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    start_worker()

    job_id = producer.enqueue_feedback(
        storeId="s1", shoppingTripId="t1", totalAmount=USD_1, settledAmount=USD_1, paymentStatusTime=1_700_000_000,
    )
    done = wait_for_state(rdb, job_id, "succeeded")

    assert json.loads(done["result"]) == {"status": "Accepted", "reasonCode": "OK"}
    assert len(calls(api, "feedback")) == 1


def test_rejected_report_is_dead_lettered_with_its_reason_code(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker, payq: PayqRunner,
) -> None:
    start_worker()

    # the sandbox rejects a report that settles more than the total
    job_id = producer.enqueue_feedback(
        storeId="s1", shoppingTripId="t1", totalAmount={"amount": "10.00", "code": "USD"},
        settledAmount={"amount": "12.00", "code": "USD"}, paymentStatusTime=1_700_000_000,
    )
    wait_for_state(rdb, job_id, "dead")

    (entry,) = json.loads(payq("dlq", "list", "--json").stdout)
    assert (entry["jobId"], entry["operation"], entry["reason"], entry["status"], entry["attempts"]) == (
        job_id, "feedback", "feedback-rejected", 200, 1,
    )
    assert "SettledExceedsTotal" in entry["error"]
    assert len(calls(api, "feedback")) == 1


def test_cancel_succeeds_once(producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker) -> None:
    start_worker()

    job_id = producer.enqueue_cancel(storeId="s1", shoppingTripId="t1")
    wait_for_state(rdb, job_id, "succeeded")

    assert api.trip("s1", "t1")["cancelled"] is True
    assert len(calls(api, "cancel")) == 1
    assert rdb.keys("payq:job:feedback:*") == []  # only a capture chains a report
