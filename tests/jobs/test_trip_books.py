"""A trip's jobs in order: refunds wait for their capture, never past what was captured, capture and cancel exclude each other.

Against the sandbox, which keeps the same books as the real API (a refund
needs a captured charge and may not exceed it; a captured trip cannot be
cancelled nor a cancelled one captured): every case below would otherwise end
as a dead letter on an operator's desk.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
import redis

from config.settings import Settings
from payapi.errors import InvalidRequest
from tasks.jobs.books import OWN_CAPTURE, TripRuleViolation
from tasks.producer import Producer
from tasks.redis import keys
from tasks.states import TripRule
from tests.support.jobs import calls, record, wait_for_state
from tests.support.names import queue_of
from tests.support.payq_cli import PayqRunner
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess

USD_10 = {"amount": "10.00", "code": "USD"}


def refund(producer: Producer, trip: str, amount: str, currency: str = "USD") -> str:
    return producer.enqueue_refund(storeId="s1", shoppingTripId=trip, amount={"amount": amount, "code": currency},
                                   refundReasonCode="DAMAGED_ITEM")


def captured(producer: Producer, rdb: redis.Redis, trip: str, amount: dict[str, str] = USD_10) -> str:
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId=trip, amount=amount)
    wait_for_state(rdb, job_id, "succeeded")
    return job_id


def test_a_refund_enqueued_while_its_capture_waits_out_a_429_is_called_once_after_the_capture_succeeds(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "sequence": ["429 Retry-After: 2"]}]})
    start_worker()
    capture = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_10)
    wait_for_state(rdb, capture, "deferred")

    refund_id = refund(producer, "t1", "4.00")
    assert record(rdb, refund_id)["state"] == "waiting"
    assert record(rdb, refund_id)["waiting_for"] == capture

    wait_for_state(rdb, refund_id, "succeeded")
    [capture_200] = [c for c in calls(api, "capture") if c["status"] == 200]
    [refund_call] = calls(api, "refund")
    assert refund_call["status"] == 200 and refund_call["time"] > capture_200["time"]
    assert record(rdb, refund_id)["attempts"] == "1"
    assert rdb.hlen("payq:dlq") == 0
    assert rdb.zcard("payq:waiting") == 0


def test_a_copy_of_a_waiting_refunds_message_does_not_run_it(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "sequence": ["429 Retry-After: 30"]}]})
    worker = start_worker()
    capture = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_10)
    wait_for_state(rdb, capture, "deferred")
    refund_id = refund(producer, "t1", "4.00")
    # its message as it will be published on release, delivered now by mistake (a hand-made publish)
    rdb.lpush(queue_of("refund"), rdb.hget(keys.job(refund_id), "held_message") or "")

    wait_for(lambda: f"{refund_id}: delivered again" in worker.log(), what="the copy to be taken and turned away")
    assert record(rdb, refund_id)["state"] == "waiting"
    assert record(rdb, refund_id)["attempts"] == "0"
    assert calls(api, "refund") == []


def test_a_refund_held_behind_a_dead_lettered_capture_runs_once_the_capture_is_replayed(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "fault": {"status": 500}}]})
    start_worker(env={"PAYQ_MAX_ATTEMPTS": "2"})
    capture = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_10)
    wait_for_state(rdb, capture, "dead")
    refund_id = refund(producer, "t1", "3.00")

    stats = json.loads(payq("stats", "--json").stdout)
    assert stats["waiting"] == 1
    shown = json.loads(payq("job", refund_id, "--json").stdout)
    assert (shown["state"], shown["why"]) == ("waiting", f"waiting for capture {capture}")
    assert calls(api, "refund") == []

    api.set_faults({"rules": []})
    assert payq("dlq", "replay", capture).returncode == 0
    wait_for_state(rdb, refund_id, "succeeded")
    assert [c["status"] for c in calls(api, "refund")] == [200]
    assert rdb.zcard("payq:waiting") == 0


def test_purging_a_dead_lettered_capture_dead_letters_its_waiting_refunds_as_capture_failed(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "fault": {"status": 400, "body": {"errorMsg": "BadRequestException: no"}}}]})
    start_worker()
    capture = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_10)
    wait_for_state(rdb, capture, "dead")
    held = [refund(producer, "t1", "3.00"), refund(producer, "t1", "2.00")]

    assert payq("dlq", "purge", capture, "--yes").returncode == 0

    entries = {e["jobId"]: e for e in json.loads(payq("dlq", "list", "--json").stdout)}
    assert set(entries) == set(held)
    for refund_id in held:
        entry = entries[refund_id]
        assert (entry["reason"], entry["operation"], entry["errorType"]) == ("capture-failed", "refund", capture)
        assert capture in entry["error"]
        assert record(rdb, refund_id)["state"] == "dead"
    assert rdb.zcard("payq:waiting") == 0
    assert json.loads(payq("stats", "--json").stdout)["deadLetters"] == [{"reason": "capture-failed", "count": 2}]
    assert calls(api, "refund") == []


def test_a_refund_past_the_captured_amount_is_refused_at_enqueue_naming_amount(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    start_worker()
    captured(producer, rdb, "t1")
    first = refund(producer, "t1", "6.00")

    with pytest.raises(TripRuleViolation) as refused:
        refund(producer, "t1", "6.00")
    assert refused.value.rules == [TripRule.OVER_REFUND]
    assert isinstance(refused.value, InvalidRequest)

    ran = payq("enqueue", "refund", "--store-id", "s1", "--trip-id", "t1", "--amount", "4.01", "--currency", "USD", "--reason", "OTHER")
    assert ran.returncode == 2
    assert "amount.amount" in ran.stderr and "captured 10.00 USD" in ran.stderr and "already refunded 6.00" in ran.stderr
    assert ran.stdout == ""

    wait_for_state(rdb, first, "succeeded")
    exact = refund(producer, "t1", "4.00")  # the last refundable cent is still refundable
    wait_for_state(rdb, exact, "succeeded")
    assert [c["status"] for c in calls(api, "refund")] == [200, 200]
    assert rdb.hlen("payq:dlq") == 0


def test_a_bulk_file_with_one_over_refund_enqueues_nothing_and_names_its_line(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    start_worker()
    captured(producer, rdb, "t1")
    lines = [
        {"operation": "refund", "storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "5.00", "code": "USD"}, "refundReasonCode": "OTHER"},
        {"operation": "capture", "storeId": "s1", "shoppingTripId": "t2", "amount": {"amount": "1.00", "code": "USD"}},
        {"operation": "refund", "storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "5.01", "code": "USD"}, "refundReasonCode": "OTHER"},
    ]
    before = set(rdb.keys("payq:job:*"))

    ran = payq("enqueue", "--file", "-", stdin="\n".join(json.dumps(line) for line in lines) + "\n")

    assert ran.returncode == 2, ran.stderr
    assert "line 3: amount.amount" in ran.stderr and "nothing enqueued" in ran.stderr
    assert set(rdb.keys("payq:job:*")) == before


def test_two_producers_racing_for_the_last_refundable_cent_cannot_both_win(
    settings: Settings, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    trips = [f"race{i}" for i in range(10)]
    for trip in trips:
        captured(producer, rdb, trip, {"amount": "1.00", "code": "USD"})
    winners: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def race(trip: str, barrier: threading.Barrier) -> None:
        mine = Producer(settings)  # a producer of its own: its own connection
        barrier.wait()
        try:
            job_id = refund(mine, trip, "0.60")
        except TripRuleViolation:
            with lock:
                refused.append(trip)
        else:
            with lock:
                winners.append(job_id)

    for trip in trips:
        barrier = threading.Barrier(2)
        racers = [threading.Thread(target=race, args=(trip, barrier)) for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=30)

    assert len(winners) == len(refused) == len(trips), (winners, refused)
    assert sorted(refused) == trips


@pytest.mark.parametrize("first", ["cancel", "capture"])
def test_capture_and_cancel_exclude_each_other_in_either_order(first: str, producer: Producer, rdb: redis.Redis, payq: PayqRunner) -> None:
    if first == "cancel":
        existing = producer.enqueue_cancel(storeId="s1", shoppingTripId="t1")
        ran = payq("enqueue", "capture", "--store-id", "s1", "--trip-id", "t1", "--amount", "1.00", "--currency", "USD")
    else:
        existing = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_10)
        ran = payq("enqueue", "cancel", "--store-id", "s1", "--trip-id", "t1")

    assert ran.returncode == 2
    assert "shoppingTripId" in ran.stderr and "s1/t1" in ran.stderr and existing in ran.stderr
    assert rdb.keys("payq:job:*") == [f"payq:job:{existing}"]
    # the same job again is still the idempotent no-op it always was
    again = producer.enqueue_cancel(storeId="s1", shoppingTripId="t1") if first == "cancel" else \
        producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_10)
    assert again == existing


def test_a_cancel_after_a_settled_capture_names_the_capture_the_books_no_longer_spell_out(
    producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    capture = captured(producer, rdb, "t1")
    assert rdb.hget("payq:trip:s1:t1", "capture") == OWN_CAPTURE, "settled, the books name it as the trip's own"

    with pytest.raises(TripRuleViolation) as refused:
        producer.enqueue_cancel(storeId="s1", shoppingTripId="t1")
    assert refused.value.rules == [TripRule.CANCEL_AFTER_CAPTURE]
    assert f"has a capture job ({capture})" in str(refused.value)


def test_a_refund_in_another_currency_or_past_seven_days_is_refused(
    producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    captured(producer, rdb, "t1")
    with pytest.raises(TripRuleViolation) as other_currency:
        refund(producer, "t1", "1.00", currency="EUR")
    assert other_currency.value.rules == [TripRule.REFUND_CURRENCY]
    assert "USD" in str(other_currency.value)

    # the capture succeeded eight days ago, as far as the books know
    rdb.hset("payq:trip:s1:t1", "captured_at", int(time.time()) - 8 * 86400)
    with pytest.raises(TripRuleViolation) as too_late:
        refund(producer, "t1", "1.00")
    assert too_late.value.rules == [TripRule.REFUND_WINDOW]


def test_payq_trip_shows_a_captured_partly_refunded_trip(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    start_worker()
    capture = captured(producer, rdb, "t1")
    first = refund(producer, "t1", "2.50")
    wait_for_state(rdb, first, "succeeded")
    report = json.loads(record(rdb, capture)["result"])["reportJobId"]
    wait_for_state(rdb, report, "succeeded")

    shown = payq("trip", "s1", "t1", "--json")

    assert shown.returncode == 0, shown.stderr
    trip = json.loads(shown.stdout)
    assert (trip["captured"], trip["refunded"], trip["refunding"], trip["refundable"], trip["currency"]) == (
        "10.00", "2.50", "0.00", "7.50", "USD")
    assert (trip["capture"]["jobId"], trip["capture"]["state"], trip["capture"]["amount"]) == (capture, "succeeded", "10.00")
    [shown_refund] = trip["refunds"]
    assert (shown_refund["jobId"], shown_refund["state"], shown_refund["amount"]) == (first, "succeeded", "2.50")
    assert shown_refund["reconciliationId"] == api.trip("s1", "t1")["refunds"][0]["reconciliationId"]
    assert [c["status"] for c in calls(api, "refund")] == [200]
    assert (trip["report"]["jobId"], trip["report"]["state"]) == (report, "succeeded")
    assert trip["cancel"] is None and trip["deadLetters"] == []
    text = payq("trip", "s1", "t1")
    assert "captured 10.00 USD, refunded 2.50, refunding 0.00, refundable 7.50" in text.stdout


def test_waiting_refunds_survive_a_killed_worker_and_a_redis_restart(
    redis_server: object, api: SandboxProcess, tmp_path: object,
) -> None:
    from tests.support.fault_redis import FaultRedis

    durable = FaultRedis()  # append-only file on, as in production
    try:
        settings = Settings(redis_url=durable.url, api_base_url=api.url, redis_retry_seconds=2)
        producer = Producer(settings)
        rdb = durable.client()
        api.set_faults({"rules": [{"endpoint": "capture", "sequence": ["429 Retry-After: 3"]}]})
        worker = WorkerProcess(durable.url, api.url)
        capture = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_10)
        wait_for_state(rdb, capture, "deferred")
        refund_id = refund(producer, "t1", "1.00")
        assert record(rdb, refund_id)["state"] == "waiting"

        worker.kill()
        durable.restart()
        rdb = durable.client()
        assert record(rdb, refund_id)["state"] == "waiting", "the held refund is in Redis, not in a worker"

        survivor = WorkerProcess(durable.url, api.url)
        try:
            wait_for_state(rdb, refund_id, "succeeded", timeout=60)
        finally:
            survivor.kill()
        assert [c["status"] for c in calls(api, "refund")] == [200]
        wait_for(lambda: rdb.zcard("payq:waiting") == 0, timeout=5, what="nothing left waiting")
    finally:
        durable.close()
