"""A store's backlog set (``payq:backlog:<store>``) loses a job in the step that settles it, not when it is next counted.

Against a real Redis, through the store classes' own steps: a settled capture
or refund, and a dead-lettered job, leave their store's set at once (the
intake's cap and ``payq stats`` read it, and an entry left behind cost ~150
bytes a trip until counted); a replay puts its job back, open again. Jobs a
previous version left in a set, settled, are still pruned by the count.
"""

from __future__ import annotations

import json
import time

import redis

from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind
from tasks.producer import Producer, prepare
from tasks.redis import keys
from tasks.states import DeadLetterReason
from tasks.store.backlog import Backlog
from tasks.store.deadletters import DeadLetter, DeadLetterStore, Replayed
from tasks.store.records import JobStore
from tests.support.jobs import USD_1

STORE = "s1"


def backlog(rdb: redis.Redis, store: str = STORE) -> set[str]:
    """The store's set as it stands, read without counting (which would prune it)."""
    return {m.decode() if isinstance(m, bytes) else str(m) for m in rdb.zrange(keys.backlog(store), 0, -1)}


def settle(jobs: JobStore, capture: str, trip: str) -> int | None:
    """Settle ``capture`` now, as a worker does: with its report and its wire fields."""
    now = int(time.time())
    report = prepare("feedback", {"storeId": STORE, "shoppingTripId": trip, "totalAmount": USD_1, "settledAmount": USD_1,
                                  "paymentStatusTime": now})
    return jobs.finish_capture(capture, now, {"reportJobId": report.job_id, "settledAt": now}, report, time.time(),
                               kwargs={"storeId": STORE, "shoppingTripId": trip, "amount": USD_1})


def dead_letter(job_id: str, kwargs: dict[str, object]) -> DeadLetter:
    return DeadLetter.of(Failure(FailureKind.REFUSED, 400), id=job_id, operation=Operation(job_id.split(":")[0]),
                         task=f"payments.{job_id.split(':')[0]}", kwargs=kwargs, reason=DeadLetterReason.PERMANENT, attempts=1,
                         dead_at=time.time())


def test_a_settled_capture_and_refund_leave_their_store_backlog_in_the_step_that_settles_them(
    producer: Producer, rdb: redis.Redis,
) -> None:
    jobs = JobStore(rdb, 86400)
    capture = producer.enqueue_capture(storeId=STORE, shoppingTripId="t1", amount=USD_1)
    still_open = producer.enqueue_capture(storeId=STORE, shoppingTripId="t2", amount=USD_1)
    assert backlog(rdb) == {capture, still_open}

    assert settle(jobs, capture, "t1") is not None
    assert backlog(rdb) == {still_open}, "the capture left; its report never joined"

    refund = producer.enqueue_refund(storeId=STORE, shoppingTripId="t1", amount=USD_1, refundReasonCode="DAMAGED_ITEM")
    assert backlog(rdb) == {still_open, refund}
    assert jobs.succeed(refund, {"reconciliationId": "rec-1"}, time.time(), kwargs=json.loads(rdb.hget(keys.job(refund), "kwargs") or ""))
    assert backlog(rdb) == {still_open}
    assert Backlog(rdb).open_jobs([STORE]) == {STORE: 1}


def test_a_dead_lettered_job_leaves_its_store_backlog_and_a_replay_puts_it_back(producer: Producer, rdb: redis.Redis) -> None:
    capture = producer.enqueue_capture(storeId=STORE, shoppingTripId="t1", amount=USD_1)
    dead_letters = DeadLetterStore(rdb, 86400, 86400)

    assert dead_letters.add(dead_letter(capture, {"storeId": STORE, "shoppingTripId": "t1", "amount": USD_1}))
    assert backlog(rdb) == set()

    assert dead_letters.replay(capture) is Replayed.REPLAYED
    assert backlog(rdb) == {capture}, "replayed, it is open again and counts against its store's cap"


def test_purging_a_dead_capture_takes_the_refunds_it_fails_out_of_their_store_backlog(producer: Producer, rdb: redis.Redis) -> None:
    capture = producer.enqueue_capture(storeId=STORE, shoppingTripId="t1", amount=USD_1)
    refund = producer.enqueue_refund(storeId=STORE, shoppingTripId="t1", amount=USD_1, refundReasonCode="DAMAGED_ITEM")
    assert rdb.hget(keys.job(refund), "state") == "waiting"
    dead_letters = DeadLetterStore(rdb, 86400, 86400)
    assert dead_letters.add(dead_letter(capture, {"storeId": STORE, "shoppingTripId": "t1", "amount": USD_1}))
    assert backlog(rdb) == {refund}

    assert dead_letters.purge([capture]) == 1

    assert rdb.hget(keys.job(refund), "state") == "dead"
    assert backlog(rdb) == set()


def test_jobs_a_previous_version_left_in_the_set_are_still_pruned_when_counted_and_jobs_outside_it_still_settle(
    producer: Producer, rdb: redis.Redis,
) -> None:
    jobs = JobStore(rdb, 86400)
    # the previous main settled jobs without touching the set: one such entry, its job succeeded long ago
    old = producer.enqueue_capture(storeId=STORE, shoppingTripId="t-old", amount=USD_1)
    rdb.hset(keys.job(old), "state", "succeeded")
    # a job enqueued before the sets existed (not in one) settles all the same
    older = producer.enqueue_capture(storeId=STORE, shoppingTripId="t-older", amount=USD_1)
    rdb.zrem(keys.backlog(STORE), older)

    assert settle(jobs, older, "t-older") is not None
    assert rdb.hget(keys.job(older), "state") == "succeeded"
    assert backlog(rdb) == {old}
    assert Backlog(rdb).open_jobs([STORE]) == {STORE: 0}, "the count is still the backstop"
    assert backlog(rdb) == set()
