"""Leases in Redis: the scripts carry out the rules of tasks/store/leases.py, against a real Redis and its clock."""

from __future__ import annotations

import json

import pytest
import redis

from tasks.producer import Producer
from tasks.redis import keys
from tasks.store import lanes
from tasks.store.leases import LeaseStore, copy_verdict, lease_end
from tasks.store.records import JobStore, Recovered
from tests.support.jobs import USD_1, record
from tests.support.names import queue_of
from tests.unit.test_leases import COPY_TABLE, LEASE, NOW

CLAIMANT = "claimant.1.abc"


def running_job(producer: Producer, rdb: redis.Redis, store: JobStore, trip: str = "t1") -> str:
    """A capture begun by worker process ``h1`` under claim ``c1``, its message taken."""
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId=trip, amount=USD_1)
    rdb.delete(*lanes.every_key(rdb, [queue_of("capture")]))
    store.begin(job_id, "capture", "w@h", 0.0, "tag-1", LEASE, holder="h1", claim="c1")
    return job_id


def set_clock_relative(rdb: redis.Redis, redis_now: float, job_id: str, lease_until: float | None,
                       last_beat: float | None, since: float | None, worker: str = CLAIMANT) -> None:
    """Write the table's times, given relative to its NOW, relative to Redis's clock instead."""
    rdb.zrem(keys.LEASES, job_id)
    if lease_until is not None:
        rdb.zadd(keys.LEASES, {job_id: redis_now + lease_until - NOW})
    if last_beat is not None:
        rdb.zadd(keys.WORKERS, {worker: redis_now + last_beat - NOW})
    if since is not None:
        rdb.hset(keys.WORKERS_STEADY, worker, redis_now + since - NOW)


@pytest.mark.parametrize(("lease_until", "last_beat", "since", "verdict"), COPY_TABLE)
def test_begin_gives_a_copy_of_a_running_job_the_verdict_of_the_rule(
    producer: Producer, rdb: redis.Redis, lease_until: float | None, last_beat: float | None, since: float | None, verdict: object,
) -> None:
    store = JobStore(rdb, 86400)
    job_id = running_job(producer, rdb, store)
    set_clock_relative(rdb, LeaseStore(rdb, LEASE).now(), job_id, lease_until, last_beat, since)

    found = store.begin(job_id, "capture", "w2@h", 0.0, "tag-2", LEASE,
                        holder=CLAIMANT, claim="c2")

    assert found.verdict is copy_verdict(lease_until, last_beat, since, NOW, LEASE) is verdict
    assert record(rdb, job_id)["claim"] == ("c2" if verdict == "run" else "c1")


def test_a_heartbeat_renews_only_the_leases_still_its_own(producer: Producer, rdb: redis.Redis) -> None:
    store, leases = JobStore(rdb, 86400), LeaseStore(rdb, LEASE)
    mine = running_job(producer, rdb, store, "t1")
    taken = running_job(producer, rdb, store, "t2")
    rdb.hset(keys.job(taken), "claim", "someone-else")
    before = {job_id: leases.lease_of(job_id) for job_id in (mine, taken)}

    beat = leases.beat("h1", [(mine, "c1"), (taken, "c1")])

    assert beat.renewed == 1
    assert leases.lease_of(mine) == lease_end(beat.now, LEASE)
    assert leases.lease_of(taken) == before[taken]
    assert [w.worker for w in leases.workers()] == ["h1"]


def test_a_lapsed_lease_is_given_back_by_a_steady_sweeper_and_its_old_holder_can_neither_call_nor_record(
    producer: Producer, rdb: redis.Redis,
) -> None:
    store, leases = JobStore(rdb, 86400), LeaseStore(rdb, LEASE)
    job_id = running_job(producer, rdb, store)
    now = leases.now()
    rdb.zadd(keys.LEASES, {job_id: now - 1})  # its holder stopped beating a lease ago

    set_clock_relative(rdb, now, job_id, NOW - 1, NOW - 1, NOW - 2, worker="sweeper")  # back from an outage 2 s ago
    assert store.recover("sweeper", LEASE, now, 100) is None, "a sweeper just back judges nobody"
    assert record(rdb, job_id)["state"] == "running"

    set_clock_relative(rdb, now, job_id, NOW - 1, NOW - 1, NOW - 60, worker="sweeper")
    assert store.recover("sweeper", LEASE, now, 100) == Recovered(lapsed=1, fetched=0)
    assert record(rdb, job_id)["state"] == "queued"
    assert record(rdb, job_id)["recovered_from"] == "h1"
    assert [json.loads(m)["headers"]["id"] for m in rdb.lrange(queue_of("capture"), 0, -1)] == [job_id]
    assert leases.recovered() == 1
    # the old holder resumes: it may not call, and what it would record is refused
    assert leases.renew(job_id, "c1") is False
    assert store.succeed(job_id, {}, now, claim="c1") is False
    assert record(rdb, job_id)["state"] == "queued"


def test_begin_asked_again_by_the_delivery_that_claimed_answers_run_again_and_claims_nothing_more(
    producer: Producer, rdb: redis.Redis,
) -> None:
    # a BEGIN whose answer a connection fault hid is asked again, whole (tasks/redis/replicas.py confirmed)
    store = JobStore(rdb, 86400)
    job_id = running_job(producer, rdb, store)
    before = record(rdb, job_id)

    again = store.begin(job_id, "capture", "w@h", 0.0, "tag-1", LEASE, holder="h1", claim="c1")

    assert (again.verdict, again.attempts) == ("run", int(before["attempts"]))
    assert record(rdb, job_id)["attempts"] == before["attempts"]
