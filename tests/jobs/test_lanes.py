"""Per-store lanes (tasks/store/lanes.py, lib/publish.lua, fetch.lua): a worker's fetch takes the stores in turn (issue #36).

Against a real Redis: the scripts' lanes and ring, what goes to a queue's own
list, and messages the previous version (or Celery's own producers) left there.
With real workers and the sandbox, no pace configured: a store's few captures
are not held behind another store's flood when the workers are the bottleneck.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import redis
from celery import Celery

from payapi.operations import QUEUES
from tasks.producer import Producer, prepare
from tasks.redis import keys, scripts
from tasks.store import lanes
from tasks.store.inflight import InFlight, Settled, fetch_call, read_fetch
from tasks.store.records import JobStore
from tests.support.jobs import USD_1, record, wait_for_state
from tests.support.names import queue_of
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess

CAPTURES, REPORTS = queue_of("capture"), queue_of("feedback")


def fetch(rdb: redis.Redis, queues: list[str], wanted: int, settled: list[Settled] | None = None) -> list[str]:
    """The job ids a fetch of worker w1 takes, in order."""
    call_keys, args = fetch_call("w1", queues, wanted, settled or [])
    fetched = read_fetch(rdb.eval(scripts.source("fetch"), len(call_keys), *call_keys, *args), call_keys)
    return [json.loads(m)["headers"]["id"] for _, m in fetched.messages]


def captures(producer: Producer, store: str, count: int, first: int = 0) -> list[str]:
    return producer.publish([
        prepare("capture", {"storeId": store, "shoppingTripId": f"t{i}", "amount": USD_1}) for i in range(first, first + count)
    ])


def test_a_fetch_takes_the_stores_in_turn_each_stores_jobs_first_in_first_out(producer: Producer, rdb: redis.Redis) -> None:
    a = captures(producer, "A", 5)
    b = captures(producer, "B", 2)
    c = captures(producer, "C", 1)

    assert lanes.stores_waiting(rdb, [CAPTURES]) == {CAPTURES: ["A", "B", "C"]}
    assert lanes.depths(rdb, QUEUES)[CAPTURES] == 8 and rdb.llen(CAPTURES) == 0
    assert fetch(rdb, [CAPTURES], 5) == [a[0], b[0], c[0], a[1], b[1]]
    # a store whose lane is empty leaves the ring; it comes back, after the others, with its next job
    assert lanes.stores_waiting(rdb, [CAPTURES]) == {CAPTURES: ["A"]}
    c2 = captures(producer, "C", 1, first=1)
    assert lanes.stores_waiting(rdb, [CAPTURES]) == {CAPTURES: ["A", "C"]}
    # a fetch wanting more than one message from each store takes each store's part in one turn
    assert fetch(rdb, [CAPTURES], 10) == [a[2], a[3], a[4], c2[0]]
    assert lanes.stores_waiting(rdb, [CAPTURES]) == {CAPTURES: []} and lanes.depths(rdb, [CAPTURES]) == {CAPTURES: 0}
    assert not rdb.exists(keys.ring(CAPTURES), keys.lane(CAPTURES, "A"), keys.lane(CAPTURES, "C"))


def test_a_fetch_takes_the_stores_in_rounds_of_equal_parts_and_the_next_fetch_goes_on_where_it_stopped(
    producer: Producer, rdb: redis.Redis,
) -> None:
    a = captures(producer, "A", 6)
    b = captures(producer, "B", 6)
    c = captures(producer, "C", 6)

    # 7 wanted of 3 stores: a round of 2 each, then one more turn, as taking one message a turn would have
    assert fetch(rdb, [CAPTURES], 7) == [a[0], a[1], b[0], b[1], c[0], c[1], a[2]]
    assert fetch(rdb, [CAPTURES], 2) == [b[2], c[2]]
    assert fetch(rdb, [CAPTURES], 4) == [a[3], b[3], c[3], a[4]]
    assert lanes.stores_waiting(rdb, [CAPTURES]) == {CAPTURES: ["B", "C", "A"]}


def test_a_capture_report_waits_in_its_stores_lane_and_a_given_back_message_goes_first(producer: Producer, rdb: redis.Redis) -> None:
    first, second = captures(producer, "A", 2)
    [taken] = fetch(rdb, [CAPTURES], 1)
    report = prepare("feedback", {"storeId": "A", "shoppingTripId": "t0", "totalAmount": USD_1, "settledAmount": USD_1,
                                  "paymentStatusTime": 1_700_000_000})
    JobStore(rdb, 86400).finish_capture(first, 1_700_000_000, {"settledAt": 1_700_000_000}, report, 1_700_000_000.5)
    assert lanes.stores_waiting(rdb, [REPORTS]) == {REPORTS: ["A"]} and rdb.llen(REPORTS) == 0

    # given back (a closing channel), the message goes to the head: the queue's own list, taken before any lane
    message = rdb.lindex(keys.inflight("w1", CAPTURES), 0)
    assert taken == first and message is not None
    later = captures(producer, "B", 1)
    assert fetch(rdb, [CAPTURES], 3, [Settled(CAPTURES, message, back=True)]) == [first, second, *later]


def test_messages_in_the_queues_own_list_from_the_previous_version_or_send_task_are_taken_first(
    producer: Producer, rdb: redis.Redis, redis_url: str,
) -> None:
    # the previous version published every message on the queue's own list, as Celery's own send_task does
    old = Celery(broker=redis_url)
    sent = [old.send_task("payments.capture", kwargs={"storeId": "old", "shoppingTripId": f"t{i}", "amount": USD_1},
                          queue=CAPTURES).id for i in range(2)]
    new = captures(producer, "A", 2)

    assert lanes.depths(rdb, [CAPTURES]) == {CAPTURES: 4}
    assert fetch(rdb, [CAPTURES], 4) == [*sent, *new]
    InFlight(rdb, "w1").give_back_all([CAPTURES])
    assert lanes.depths(rdb, [CAPTURES]) == {CAPTURES: 4}


def test_a_store_with_a_few_captures_is_not_held_behind_another_stores_flood_when_the_workers_are_the_bottleneck(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    # no pace, no rate limit: the workers are the bottleneck, and every setting is at its default
    start_worker(), start_worker()
    flood = captures(producer, "A", 3000)
    wait_for(lambda: record(rdb, flood[0]).get("state") == "succeeded", timeout=60, what="store A's flood under way")

    small = captures(producer, "B", 10)
    for job_id in small:
        wait_for_state(rdb, job_id, "succeeded", timeout=60)
    # first come, first served, B's 10 settled after all of A's 3,000; in its lane, B takes every other turn of a fetch
    settled_of_a = succeeded(rdb, flood)
    assert settled_of_a <= 2000, f"{settled_of_a} of A's 3,000 captures settled before B's 10: B waited behind A's backlog"
    wait_for(lambda: succeeded(rdb, flood) == len(flood), timeout=180, interval=0.5, what="all of A's captures to settle")
    assert lanes.depths(rdb, QUEUES)[CAPTURES] == 0 and not rdb.exists(keys.ring(CAPTURES))


def succeeded(rdb: redis.Redis, job_ids: list[str]) -> int:
    """How many of ``job_ids`` succeeded (one round trip)."""
    pipe = rdb.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(keys.job(job_id), "state")
    return sum(1 for state in pipe.execute() if state == "succeeded")
