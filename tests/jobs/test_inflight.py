"""A worker's in-flight lists against a real Redis (tasks/store/inflight.py, fetch.lua, recover.lua): nothing fetched lives only in memory."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from payapi.operations import QUEUES
from tasks.producer import Producer
from tasks.redis import keys, scripts
from tasks.store import lanes
from tasks.store.inflight import Held, InFlight, Settled, ack_commands, fetch_call, read_fetch
from tasks.store.leases import LeaseStore
from tasks.store.records import JobStore, Recovered
from tests.support.jobs import USD_1, record
from tests.support.names import queue_of
from tests.unit.test_inflight_rule import DEAD, HELD_TABLE, NOW

# Long, and the table's lease ends stretched tenfold on Redis's clock: the sweep reads Redis's clock seconds after the
# setup on a loaded machine (three suites on two cores stalled one by several), and a verdict must not move with that
LEASE = 60.0
STRETCH = 10
SWEEPER = "sweeper.1.abc"
CAPTURES, REPORTS = queue_of("capture"), queue_of("feedback")


def fetch(rdb: redis.Redis, worker: str, queues: list[str], wanted: int, settled: list[Settled] | None = None) -> tuple[list[tuple[str, str]], str | None]:
    for command in ack_commands(worker, [s for s in settled or [] if not s.back]):  # as the worker sends them, ahead
        rdb.execute_command(*command)
    call_keys, args = fetch_call(worker, queues, wanted, [s for s in settled or [] if s.back])
    fetched = read_fetch(rdb.eval(scripts.source("fetch"), len(call_keys), *call_keys, *args), call_keys)
    return [(q, str(m)) for q, m in fetched.messages], fetched.wake


def job_of(message: str) -> str:
    return str(json.loads(message)["headers"]["id"])


def captures(producer: Producer, *trips: str) -> list[str]:
    return [producer.enqueue_capture(storeId="s1", shoppingTripId=trip, amount=USD_1) for trip in trips]


def test_a_fetch_moves_messages_into_the_workers_own_list_one_queue_after_the_other(producer: Producer, rdb: redis.Redis) -> None:
    capture_ids = captures(producer, "t1", "t2", "t3")
    rdb.lpush(REPORTS, json.dumps({"headers": {"id": "r1"}, "properties": {"delivery_tag": "x"}}))

    taken, wake = fetch(rdb, "w1", [CAPTURES, REPORTS], 3)

    assert wake is None
    assert [(q, job_of(m)) for q, m in taken] == [(CAPTURES, capture_ids[0]), (REPORTS, "r1"), (CAPTURES, capture_ids[1])]
    assert [job_of(m) for m in rdb.lrange(keys.inflight("w1", CAPTURES), 0, -1)] == capture_ids[1::-1]
    assert [job_of(m) for m in lanes.messages(rdb, CAPTURES)] == capture_ids[2:]
    assert rdb.zscore(keys.INFLIGHT, "w1") is not None


def test_the_next_fetch_settles_first_an_acknowledged_message_leaves_one_given_back_goes_to_the_head(
    producer: Producer, rdb: redis.Redis,
) -> None:
    first, second, third = captures(producer, "t1", "t2", "t3")
    (_, done), (_, back) = fetch(rdb, "w1", [CAPTURES], 2)[0]

    taken, _ = fetch(rdb, "w1", [CAPTURES], 1, [Settled(CAPTURES, done), Settled(CAPTURES, back, back=True)])

    assert [job_of(m) for _, m in taken] == [second]  # given back to the head, it is the next taken
    assert [job_of(m) for m in rdb.lrange(keys.inflight("w1", CAPTURES), 0, -1)] == [second]
    assert [job_of(m) for m in lanes.messages(rdb, CAPTURES)] == [third]
    assert first == job_of(done)
    # a message settled twice (a fetch whose answer was lost, sent again) is not given back twice
    fetch(rdb, "w1", [CAPTURES], 0, [Settled(CAPTURES, back, back=True)] * 2)
    assert [job_of(m) for m in lanes.messages(rdb, CAPTURES)] == [second, third]  # the queue's own list first


def test_a_worker_that_found_nothing_is_woken_by_the_next_publish_however_soon_it_comes(producer: Producer, rdb: redis.Redis) -> None:
    taken, wake = fetch(rdb, "w1", [CAPTURES], 8)
    assert taken == [] and wake is not None
    # published after the fetch, before the worker blocks: the entry is after the id it blocks from
    captures(producer, "t1")
    blocker = redis.Redis(connection_pool=rdb.connection_pool)
    woken = blocker.xread({keys.WAKE: wake}, block=5000)
    assert woken and woken[0][0] == keys.WAKE

    _, wake = fetch(rdb, "w1", [CAPTURES], 8)
    _, wake = fetch(rdb, "w1", [CAPTURES], 8)
    found: list[object] = []
    waiting = threading.Thread(target=lambda: found.append(blocker.xread({keys.WAKE: str(wake)}, block=5000)))
    waiting.start()
    captures(producer, "t2")
    waiting.join(timeout=10)
    assert found and found[0]


def dead_worker_with(rdb: redis.Redis, producer: Producer, state: str | None, holder: str | None, lease_until: float | None,
                     redis_now: float) -> str:
    """A capture in ``state`` whose message the dead worker fetched; the table's times, relative to its NOW, moved to Redis's clock."""
    job_id = captures(producer, "t1")[0]
    fetch(rdb, DEAD, [CAPTURES], 1)
    if state is None:
        rdb.delete(keys.job(job_id))
    else:
        rdb.hset(keys.job(job_id), mapping={"state": state, **({"holder": holder, "claim": "c1"} if holder else {})})
    if lease_until is not None:
        rdb.zadd(keys.LEASES, {job_id: redis_now + (lease_until - NOW) * STRETCH})
    rdb.zadd(keys.WORKERS, {DEAD: redis_now - LEASE - 1, SWEEPER: redis_now})
    rdb.hset(keys.WORKERS_STEADY, SWEEPER, redis_now - 2 * LEASE)
    return job_id


@pytest.mark.parametrize(("state", "holder", "lease_until", "held"), HELD_TABLE)
def test_a_dead_workers_fetched_message_is_settled_as_the_rule_says(
    producer: Producer, rdb: redis.Redis, state: str | None, holder: str | None, lease_until: float | None, held: Held,
) -> None:
    store = JobStore(rdb, 86400)
    redis_now = LeaseStore(rdb, LEASE).now()
    job_id = dead_worker_with(rdb, producer, state, holder, lease_until, redis_now)

    given = store.recover(SWEEPER, LEASE, redis_now, 100)

    queued = [job_of(m) for m in lanes.messages(rdb, CAPTURES)]
    kept = [job_of(m) for m in rdb.lrange(keys.inflight(DEAD, CAPTURES), 0, -1)]
    assert (queued, kept) == {Held.BACK: ([job_id], []), Held.RECOVER: ([job_id], []), Held.KEEP: ([], [job_id]),
                              Held.DROP: ([], [])}[held]
    assert given == {Held.BACK: Recovered(0, 1), Held.RECOVER: Recovered(1, 0)}.get(held, Recovered(0, 0))
    assert (rdb.zscore(keys.INFLIGHT, DEAD) is not None) is (held is Held.KEEP)
    if held is Held.RECOVER:
        assert record(rdb, job_id)["state"] == "queued" and "claim" not in record(rdb, job_id)
        assert rdb.zscore(keys.LEASES, job_id) is None


def test_a_begun_job_whose_lease_lapsed_with_its_worker_comes_back_once_not_twice(producer: Producer, rdb: redis.Redis) -> None:
    store = JobStore(rdb, 86400)
    redis_now = LeaseStore(rdb, LEASE).now()
    # the dead worker began it: the lease sweep would publish it from its record, its list holds its message too
    job_id = dead_worker_with(rdb, producer, "running", DEAD, NOW - 1, redis_now)

    assert store.recover(SWEEPER, LEASE, redis_now, 100) == Recovered(lapsed=1, fetched=0)
    assert store.recover(SWEEPER, LEASE, redis_now, 100) == Recovered(0, 0)
    assert [job_of(m) for m in lanes.messages(rdb, CAPTURES)] == [job_id]


def test_a_live_worker_and_a_sweeper_not_yet_steady_keep_their_hands_off(producer: Producer, rdb: redis.Redis) -> None:
    store = JobStore(rdb, 86400)
    redis_now = LeaseStore(rdb, LEASE).now()
    dead_worker_with(rdb, producer, "queued", None, None, redis_now)

    rdb.hset(keys.WORKERS_STEADY, SWEEPER, redis_now - 2)  # the sweeper is just back from an outage
    assert store.recover(SWEEPER, LEASE, redis_now, 100) is None
    rdb.hset(keys.WORKERS_STEADY, SWEEPER, redis_now - 2 * LEASE)
    rdb.zadd(keys.WORKERS, {DEAD: redis_now - 1})  # it beats: alive
    assert store.recover(SWEEPER, LEASE, redis_now, 100) == Recovered(0, 0)
    assert rdb.llen(keys.inflight(DEAD, CAPTURES)) == 1


def test_a_worker_that_died_before_its_first_heartbeat_is_judged_by_its_first_fetch(producer: Producer, rdb: redis.Redis) -> None:
    store = JobStore(rdb, 86400)
    redis_now = LeaseStore(rdb, LEASE).now()
    job_id = dead_worker_with(rdb, producer, "queued", None, None, redis_now)
    rdb.zrem(keys.WORKERS, DEAD)

    assert store.recover(SWEEPER, LEASE, redis_now, 100) == Recovered(0, 0), "fetched a moment ago: maybe about to beat"
    rdb.zadd(keys.INFLIGHT, {DEAD: redis_now - LEASE - 1})
    assert store.recover(SWEEPER, LEASE, redis_now, 100) == Recovered(0, 1)
    assert [job_of(m) for m in lanes.messages(rdb, CAPTURES)] == [job_id]


def test_a_new_channel_gives_back_what_its_workers_lists_still_hold(producer: Producer, rdb: redis.Redis) -> None:
    capture_ids = captures(producer, "t1", "t2", "t3")
    fetch(rdb, "w1", [CAPTURES], 3)

    assert InFlight(rdb, "w1").give_back_all(list(QUEUES)) == 3

    assert [job_of(m) for m in lanes.messages(rdb, CAPTURES)] == capture_ids  # taken again oldest first
    assert rdb.llen(keys.inflight("w1", CAPTURES)) == 0
