"""What a settled trip leaves in Redis with every setting at its default, and that it still does its jobs.

A settled job's record is compacted in the step that records its success
(tasks/jobs/settled.py): a listpack of its idempotency key and outcome, kept
3 days from the settling; the trip's books 8 days, past the 7-day refund
window. Everything that reads a record reads it as before: ``payq job``,
``payq trip``, a resend (a no-op, or a conflict naming the field), and a
refund late in the window is checked against the books after the capture's
record has gone.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
import redis

from payapi.errors import JobConflict
from payapi.operations import QUEUES
from tasks.jobs.books import OWN_CAPTURE, TripRuleViolation
from tasks.producer import Producer
from tasks.redis import keys
from tasks.states import TripRule
from tasks.store import lanes
from tests.support.jobs import record, wait_for_state
from tests.support.payq_cli import PayqRunner
from tests.support.sandbox import SandboxProcess
from tests.support.worker import DEFAULT_ENV, WorkerProcess

STORE = "store-0042"
AMOUNT = {"amount": "12.34", "code": "USD"}
DAY = 86400


def settled_trip(producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess]) -> tuple[str, str, str]:
    """A trip captured and reported by a worker with the default settings: (trip id, capture's id, report's id)."""
    start_worker(env=DEFAULT_ENV)
    trip = str(uuid.uuid4())
    capture = producer.enqueue_capture(storeId=STORE, shoppingTripId=trip, amount=AMOUNT)
    report = json.loads(wait_for_state(rdb, capture, "succeeded")["result"])["reportJobId"]
    wait_for_state(rdb, report, "succeeded")
    return trip, capture, report


def depth(rdb: redis.Redis) -> int:
    return sum(lanes.depths(rdb, QUEUES).values())


def test_a_settled_trip_keeps_small_listpack_records_for_3_days_and_its_books_for_8_that_read_as_before(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    trip, capture, report = settled_trip(producer, rdb, start_worker)

    assert set(rdb.hgetall(keys.job(capture))) == {"state", "attempts", "enqueued_at", "updated_at", "last_attempt_at", "settled_at",
                                                   "in.amount.amount", "in.amount.code"}
    assert set(rdb.hgetall(keys.job(report))) == {"state", "attempts", "enqueued_at", "updated_at", "last_attempt_at", "in.totalAmount.amount",
                                                  "in.totalAmount.code"}, "paid in full: settledAmount is totalAmount; taken: Accepted, OK"
    assert rdb.hget(keys.trip(STORE, trip), "capture") == OWN_CAPTURE, "the books name the trip's own capture without its id"

    for job_id in (capture, report):
        assert rdb.object("encoding", keys.job(job_id)) == "listpack"
        assert 3 * DAY - 60 < rdb.ttl(keys.job(job_id)) <= 3 * DAY
    assert 8 * DAY - 60 < rdb.ttl(keys.trip(STORE, trip)) <= 8 * DAY

    shown = json.loads(payq("job", capture, "--json").stdout)
    assert (shown["state"], shown["attempts"], shown["reportJobId"]) == ("succeeded", 1, report)
    assert shown["request"] == {"storeId": STORE, "shoppingTripId": trip, "amount": AMOUNT}
    assert shown["result"]["reportJobId"] == report and shown["enqueuedAt"] and shown["updatedAt"]
    assert shown["firstAttemptAt"] == shown["lastAttemptAt"] is not None
    shown = json.loads(payq("job", report, "--json").stdout)
    assert (shown["operation"], shown["state"], shown["result"]) == ("feedback", "succeeded", {"status": "Accepted", "reasonCode": "OK"})
    assert shown["request"]["totalAmount"] == AMOUNT and shown["request"]["shoppingTripId"] == trip
    ran = payq("trip", STORE, trip, "--json")
    assert ran.returncode == 0, ran.stderr
    view = json.loads(ran.stdout)
    assert (view["capture"]["jobId"], view["capture"]["state"], view["capture"]["amount"]) == (capture, "succeeded", "12.34")
    assert (view["report"]["jobId"], view["report"]["state"], view["captured"]) == (report, "succeeded", "12.34")


def test_a_settled_job_sent_again_is_a_no_op_and_with_another_amount_a_conflict_naming_it(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    trip, capture, report = settled_trip(producer, rdb, start_worker)
    stored = rdb.hgetall(keys.job(capture))

    assert producer.enqueue_capture(storeId=STORE, shoppingTripId=trip, amount={"amount": "12.340", "code": "USD"}) == capture
    reported = record(rdb, report)
    fields = json.loads(reported["kwargs"])
    assert producer.enqueue_feedback(**fields) == report
    with pytest.raises(JobConflict) as refused:
        producer.enqueue_capture(storeId=STORE, shoppingTripId=trip, amount={"amount": "99", "code": "USD"})

    assert [(d.job_id, d.field, d.stored, d.sent) for d in refused.value.differences] == [(capture, "amount.amount", "12.34", "99")]
    assert rdb.hgetall(keys.job(capture)) == stored and depth(rdb) == 0, "nothing written, nothing published"


def test_a_refund_on_day_6_is_checked_against_its_capture_s_books_after_the_capture_s_record_has_gone(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    trip, capture, report = settled_trip(producer, rdb, start_worker)
    books = keys.trip(STORE, trip)
    # six days on: the records (3 days) are gone, the books (8 days from the settling) have two days left
    rdb.delete(keys.job(capture), keys.job(report))
    rdb.hset(books, "captured_at", int(time.time()) - 6 * DAY)
    rdb.expire(books, 2 * DAY)

    def refund(amount: str) -> str:
        return producer.enqueue_refund(storeId=STORE, shoppingTripId=trip, amount={"amount": amount, "code": "USD"},
                                       refundReasonCode="DAMAGED_ITEM")

    with pytest.raises(TripRuleViolation) as refused:
        refund("12.35")
    assert refused.value.rules == [TripRule.OVER_REFUND]
    first = refund("10.00")
    with pytest.raises(TripRuleViolation) as refused:
        refund("2.35")
    assert refused.value.rules == [TripRule.OVER_REFUND], "the first refund counts against what is left"
    wait_for_state(rdb, first, "succeeded")
    view = json.loads(payq("trip", STORE, trip, "--json").stdout)
    assert (view["captured"], view["refunded"], view["refundable"]) == ("12.34", "10.00", "2.34"), "read from the books"
    # a day past the window, the same books refuse any refund
    rdb.hset(books, "captured_at", int(time.time()) - 7 * DAY - 3600)
    with pytest.raises(TripRuleViolation) as refused:
        refund("0.01")
    assert refused.value.rules == [TripRule.REFUND_WINDOW]
