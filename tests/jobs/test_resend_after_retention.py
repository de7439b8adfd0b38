"""A job sent again after its record's retention (``PAYQ_JOB_RETENTION_DAYS``) is a new job to payq: only the API's own idempotency protects it.

docs/scaling.md says so; this shows it on a real Redis, a real worker and the
sandbox, without waiting days: the retention is a fraction of a day (the
setting takes one), so the settled records expire seconds after settling,
counted from the settling as with the default. The trip's books are kept 8
days whatever the records' retention, and still hold the trip: a capture sent
again runs again (the API charges once), a refund they still count is a no-op.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import redis

from config.settings import Settings
from tasks.jobs.books import OWN_CAPTURE
from tasks.producer import Producer, prepare
from tasks.redis import keys
from tests.support.jobs import USD_1, calls, wait_for_state
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import DEFAULT_ENV, WorkerProcess

RETENTION_DAYS = "0.0001"  # 8 seconds: int(0.0001 * 86400)
DAY = 86400
TEN = {"amount": "10.00", "code": "USD"}


def short_retention(settings: Settings, start_worker: Callable[..., WorkerProcess]) -> Producer:
    """A worker with every setting at its default but records kept seconds; a producer with the same retention."""
    start_worker(env={**DEFAULT_ENV, "PAYQ_JOB_RETENTION_DAYS": RETENTION_DAYS})
    return Producer(settings.model_copy(update={"job_retention_days": float(RETENTION_DAYS)}))


def test_a_capture_sent_again_after_its_record_expired_runs_again_and_the_api_charges_once(
    settings: Settings, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    producer = short_retention(settings, start_worker)
    capture = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    wait_for_state(rdb, capture, "succeeded")
    wait_for(lambda: len(calls(api, "feedback")) == 1, what="the capture's report")
    assert 0 < rdb.ttl(keys.job(capture)) <= 8, "kept the retention from its settling"
    # within the window, the same job again is the no-op it always is
    [within] = producer.submit([prepare("capture", {"storeId": "s1", "shoppingTripId": "t1", "amount": USD_1})])
    assert not within.created

    wait_for(lambda: not rdb.exists(keys.job(capture)), timeout=20, what="the capture's record to expire")
    assert rdb.hget(keys.trip("s1", "t1"), "capture") == OWN_CAPTURE, "the books outlive the record"
    assert 7 * DAY < rdb.ttl(keys.trip("s1", "t1")) <= 8 * DAY

    [again] = producer.submit([prepare("capture", {"storeId": "s1", "shoppingTripId": "t1", "amount": USD_1})])

    assert again.created, "past the window the same capture is a new job to payq"
    wait_for_state(rdb, capture, "succeeded")
    wait_for(lambda: len(calls(api, "feedback")) == 2, what="the second run's report")
    trip = api.trip("s1", "t1")
    assert (trip["captureCalls"], trip["captured"]) == (2, USD_1), "called twice, charged once: the API's idempotency by trip"
    books = rdb.hgetall(keys.trip("s1", "t1"))
    assert (books["capture_cents"], books.get("refunded", "0")) == ("100", "0"), "the books count the capture once"


def test_a_refund_sent_again_after_its_record_expired_is_a_no_op_while_its_trip_s_books_still_count_it(
    settings: Settings, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    producer = short_retention(settings, start_worker)
    capture = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=TEN)
    wait_for_state(rdb, capture, "succeeded")
    four = {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "4.00", "code": "USD"}, "refundReasonCode": "OTHER",
            "refundRequestId": str(uuid.uuid4())}
    refund = producer.enqueue("refund", four)
    wait_for_state(rdb, refund, "succeeded")
    wait_for(lambda: not rdb.exists(keys.job(refund)), timeout=20, what="the refund's record to expire")

    [again] = producer.submit([prepare("refund", four)])

    assert not again.created, "the books, kept past the refund window, still know it: nothing new runs"
    assert rdb.hget(keys.trip("s1", "t1"), "refunded") == "400", "counted once"
    rest = producer.enqueue_refund(storeId="s1", shoppingTripId="t1", amount={"amount": "6.00", "code": "USD"}, refundReasonCode="OTHER")
    wait_for_state(rdb, rest, "succeeded")
    assert len(calls(api, "refund")) == 2 and len(api.trip("s1", "t1")["refunds"]) == 2, "each refund called once"
