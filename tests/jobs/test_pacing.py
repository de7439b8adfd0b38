"""Every endpoint paced across all workers: a configured limit is never exceeded, a learned one stops the 429s.

The sandbox limits the capture endpoint to R calls in any one-second window
and answers ``429 Retry-After: 1`` past it (payq is not told, unless the test
configures ``PAYQ_RATE_LIMITS``). Two worker processes take the jobs, so the
pace must hold for both together. Calls per second are counted from the
sandbox's request log: every call it saw, accepted or refused.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

import redis

from payapi.operations import Operation
from sandbox.ratelimit import most_in_one_second
from tasks.pacing.pacer import Pacer
from tasks.pacing.rules import pace_at
from tasks.producer import Producer, prepare
from tasks.redis import keys
from tests.support.jobs import USD_1, calls, record, wait_for_state
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess

R = 8


def limit_captures(api: SandboxProcess, per_second: int = R) -> None:
    api.set_faults({"rules": [], "rate_limits": {"capture": {"per_second": per_second, "retry_after": 1}}})


def enqueue_captures(producer: Producer, count: int, first: int = 0) -> list[str]:
    return producer.publish([
        prepare("capture", {"storeId": "s1", "shoppingTripId": f"t{i}", "amount": USD_1}) for i in range(first, first + count)
    ])


def settle(rdb: redis.Redis, job_ids: list[str]) -> None:
    for job_id in job_ids:
        wait_for_state(rdb, job_id, "succeeded", timeout=60)


def test_a_configured_limit_is_never_exceeded_by_two_workers_together(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    limit_captures(api)
    env = {"PAYQ_RATE_LIMITS": json.dumps({"capture": R})}
    start_worker(env=env), start_worker(env=env)

    job_ids = enqueue_captures(producer, 5 * R)
    settle(rdb, job_ids)

    captures = calls(api, "capture")
    assert [c for c in captures if c["status"] == 429] == [], "a configured limit is kept, not found out"
    assert len(captures) == 5 * R
    assert most_in_one_second(c["time"] for c in captures) <= R
    # waiting for a turn is not an attempt: one call each
    assert {record(rdb, j)["attempts"] for j in job_ids} == {"1"}
    paced = [json.loads(item)["cause"] for j in job_ids for item in rdb.lrange(f"payq:job:{j}:deferrals", 0, -1)]
    assert paced and set(paced) == {"paced"}, "most captures waited for their turn in the deferred set"


def test_a_learned_limit_stops_the_429s_after_the_first_pause(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    limit_captures(api)
    start_worker(), start_worker()

    job_ids = enqueue_captures(producer, 6 * R)
    settle(rdb, job_ids)

    captures = calls(api, "capture")
    throttled = [c["time"] for c in captures if c["status"] == 429]
    assert throttled, "payq knew no limit, so the first burst met the sandbox's"
    pause_end = min(throttled) + 1.0
    after = [c for c in captures if c["time"] >= pause_end + 0.2]
    assert after, "most captures came after the pause"
    assert [c for c in after if c["status"] == 429] == [], "after the first pause the learned pace keeps under the limit"
    assert most_in_one_second(c["time"] for c in after) <= R
    learned = rdb.hgetall("payq:pace:capture")
    assert 0.5 * R <= float(learned["accepted"]) <= 1.5 * R, learned


def test_the_lesson_counts_the_calls_the_api_accepted_that_were_still_in_flight_when_its_429_came(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    # The limiter stands before the sandbox's latency: the R calls it accepts are answered a second later, the ones
    # past the limit at once. So when the first 429 comes back, every call the API accepted is still in flight (as at a
    # burst's start on a busy machine, where their answers are written a few tenths late): measured then, the lesson
    # would be nothing. (The pause is long enough for them to land with plenty to spare.)
    api.set_faults({"rules": [{"endpoint": "capture", "latency_ms": 1000}],
                    "rate_limits": {"capture": {"per_second": R, "retry_after": 5}}})
    start_worker(concurrency=2 * R)  # more calls at once than the API takes
    job_ids = enqueue_captures(producer, 2 * R)

    until = float(wait_for(lambda: rdb.get(keys.pause("capture")), timeout=30, interval=0.01, what="the first 429's pause"))
    # the lesson is in force before the pause ends, when turns are handed out again
    accepted = wait_for(lambda: rdb.hget(keys.pace("capture"), "accepted"), timeout=max(0.1, until - time.time()), interval=0.05,
                        what="the first 429's lesson before its pause ended")

    throttled = min(c["time"] for c in calls(api, "capture") if c["status"] == 429)
    taken = [c for c in calls(api, "capture") if c["status"] == 200 and throttled - 1 < c["time"] <= throttled]
    assert len(taken) == R, "the API took R in the second before it refused"
    # a call may race the refused one to the API by a few milliseconds and be counted after it
    assert 0.75 * R <= float(accepted) <= R, accepted
    settle(rdb, job_ids)


def test_the_learned_pace_outlives_the_worker_that_learned_it(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    limit_captures(api)
    first = start_worker()
    settle(rdb, enqueue_captures(producer, 4 * R))
    assert any(c["status"] == 429 for c in calls(api, "capture")), "the first worker learned the limit from a 429"
    first.stop()
    started = max(c["time"] for c in calls(api, "capture"))
    learned = Pacer(rdb, {}).learned(Operation.CAPTURE)
    assert learned is not None, "what the 429 taught is kept in Redis, not in the worker"
    # The limit is lifted for the new worker: whatever it calls, it is paced by what it read, not by 429s. (With the
    # limit kept, the learned pace climbs back to it within a minute, by design, and a call late on a loaded
    # machine could then meet a 429 of its own.)
    api.set_faults({"rules": [], "rate_limits": {}})

    start_worker()
    settle(rdb, enqueue_captures(producer, 3 * R, first=4 * R))

    fresh = [c["time"] for c in calls(api, "capture") if c["time"] > started]
    assert len(fresh) == 3 * R, "one call each"
    fastest = max(pace_at(learned, None, t) or 0.0 for t in fresh)
    # unpaced, the new worker's 4 threads would make the 24 calls within a fraction of a second
    assert fastest <= 1.2 * R
    assert most_in_one_second(fresh) <= math.ceil(fastest) + 1, "a new worker starts at the learned pace"
