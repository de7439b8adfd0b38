"""A 429 pauses its endpoint for every worker: no call reaches it until the pause ends, and then every job succeeds.

The sandbox answers the first capture it sees with ``429 Retry-After: 3`` at
once and every other capture for a while after LATENCY, so the calls already in
flight when the 429 comes back all began before the pause was set; a worker
that ignored the pause would call again as soon as one of them returned,
LATENCY later. A second wave of captures is enqueued once those have returned,
while the endpoint is still paused, so every worker (idle by then) meets the
pause. Whether a call was in flight is judged by when its attempt began (the
job record's ``last_attempt_at``), not by when its request reached the sandbox.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from tasks.pacing.pacer import Pacer
from tasks.producer import Producer, prepare
from tests.support.jobs import USD_1, body, calls, queued_messages, record, wait_for_state
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess

WAVE = 16
PAUSE = 3.0
LATENCY = 0.5
SET_PAUSE = 0.2  # a busy worker's delay between reading the clock and its pause landing in Redis


def enqueue_wave(producer: Producer, first: int) -> list[str]:
    return producer.publish(
        [prepare("capture", {"storeId": "s1", "shoppingTripId": f"t{i}", "amount": USD_1}) for i in range(first, first + WAVE)]
    )


def pause_then_capture(api: SandboxProcess, producer: Producer, rdb: redis.Redis, slots: int) -> None:
    """Enqueue two waves of captures into a 429 and check that the workers (``slots`` threads in all) honoured the pause."""
    api.set_faults({"rules": [
        {"endpoint": "capture", "sequence": [f"429 Retry-After: {PAUSE:g}"]},
        # only calls around the 429 need to be slow; later ones are quick, to keep the test short
        {"endpoint": "capture", "latency_ms": LATENCY * 1000, "for_seconds": PAUSE},
    ]})
    job_ids = enqueue_wave(producer, 0)
    wait_for(lambda: queued_messages(rdb) == 0, what="the first wave to be answered or deferred")
    # what `payq stats` shows: the pause runs PAUSE from when the worker read the 429
    recorded_until = Pacer(rdb, {}).pauses(["capture"]).get("capture")
    second_wave_at = time.time()
    job_ids += enqueue_wave(producer, WAVE)
    for job_id in job_ids:
        wait_for_state(rdb, job_id, "succeeded")

    log: list[dict[str, Any]] = calls(api, "capture")
    first, *rest = log
    assert first["status"] == 429
    assert recorded_until is not None and recorded_until >= first["time"] + PAUSE, recorded_until
    paused_at, paused_until = recorded_until - PAUSE, recorded_until
    assert second_wave_at < paused_until - 1.0, "too slow to enqueue the second wave during the pause"
    # When each call's attempt began, by the worker's clock (no job called again after these calls,
    # so its last attempt is the call): one that began before the pause was set was in flight,
    # however late its request landed; one that began later must have been deferred instead.
    began = {body(e)["shoppingTripId"]: float(record(rdb, f"capture:s1:{body(e)['shoppingTripId']}")["last_attempt_at"])
             for e in rest}
    in_flight = [e for e in rest if began[body(e)["shoppingTripId"]] <= paused_at + SET_PAUSE]
    during = [e for e in rest if e not in in_flight and e["time"] < paused_until]
    after = [e for e in rest if e["time"] >= paused_until]
    assert during == [], f"calls during the pause (set at +{paused_at - first['time']:.3f}s): " + ", ".join(
        f"{body(e)['shoppingTripId']} began +{began[body(e)['shoppingTripId']] - first['time']:.3f}s, "
        f"arrived +{e['time'] - first['time']:.3f}s" for e in during
    )
    assert len(in_flight) < slots
    assert len(after) == 2 * WAVE - len(in_flight)  # every other job, the 429'd one included, once
    assert all(e["status"] == 200 for e in in_flight + after)
    # jobs deferred by the pause made no call, so they used up no attempt
    assert sum(int(record(rdb, job_id)["attempts"]) for job_id in job_ids) == len(log)
    assert len([t for t in api.ledger() if t["captured"]]) == 2 * WAVE


def test_no_capture_call_until_the_pause_ends(producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker) -> None:
    worker = start_worker(concurrency=8)

    pause_then_capture(api, producer, rdb, slots=8)

    assert worker.log().count("retry: capture endpoint paused until") >= 2 * WAVE - 8


def test_the_pause_holds_for_every_worker_process(producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker) -> None:
    workers = [start_worker(concurrency=4), start_worker(concurrency=4)]

    pause_then_capture(api, producer, rdb, slots=8)

    # only the worker that got the 429 set the pause; both met it and deferred jobs instead of calling
    for worker in workers:
        assert "retry: capture endpoint paused until" in worker.log()
