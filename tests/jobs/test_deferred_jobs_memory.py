"""1,000 deferred jobs wait in Redis, not in the worker: its memory stays flat, and each runs once, after its delay.

A probe capture is answered ``429 Retry-After: PAUSE``; the 1,000 captures
enqueued while the endpoint is paused are all deferred without an API call. With
every one of them deferred at once, the worker holds no message and its resident
memory has barely moved; when the pause ends each trip is captured exactly once,
none before the pause's end, and reported exactly once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import redis

from tasks.producer import Producer, prepare
from tasks.redis import keys
from tests.support.jobs import USD_1, body, calls, queued_messages, record, wait_for_state, wait_for_value
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess

JOBS = 1000
# Long enough for a worker on a busy two-core machine to defer every job before the pause ends:
# deferring costs a few ms of CPU a job, and a worker starved by parallel tests managed 60 a second.
PAUSE = 20.0
# Growth allowed for the whole run (a worker's threads and pools warming up take a few MB);
# before deferred jobs' tracebacks were released at once, 1,000 of them grew a worker by ~60 MB.
RSS_GROWTH_KIB = 20 * 1024


def test_a_thousand_deferred_jobs_keep_worker_memory_flat_and_each_runs_once_after_its_delay(
    producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "shoppingTripId": "probe", "sequence": [f"429 Retry-After: {PAUSE:g}"]}]})
    worker = start_worker(concurrency=8, env={"PAYQ_DEFERRED_POLL_INTERVAL": "0.05"})
    probe = producer.enqueue_capture(storeId="s1", shoppingTripId="probe", amount=USD_1)
    wait_for_state(rdb, probe, "deferred")
    pause_ends = calls(api, "capture")[0]["time"] + PAUSE
    rss_before = worker.rss_kib()

    job_ids = producer.publish(
        [prepare("capture", {"storeId": "s1", "shoppingTripId": f"t{i}", "amount": USD_1}) for i in range(JOBS)]
    )
    wait_for_value(lambda: (rdb.zcard(keys.DEFERRED), queued_messages(rdb)), (JOBS + 1, 0),
                   timeout=PAUSE, interval=0.1, what="(jobs deferred, messages queued or unacknowledged)")
    rss_deferred = worker.rss_kib()
    assert time.time() < pause_ends, "the pause ended before every job was deferred; the check above proves nothing"
    assert len(calls(api, "capture")) == 1  # deferred without an API call

    wait_for(lambda: sum(1 for trip in api.ledger() if trip["reports"]) == JOBS + 1,
             timeout=PAUSE + 90, interval=0.5, what="every trip to be captured and reported")
    rss_after = worker.rss_kib()

    by_trip: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in calls(api, "capture"):
        by_trip[body(entry)["shoppingTripId"]].append(entry)
    assert [e["status"] for e in by_trip.pop("probe")] == [429, 200]
    assert sorted(by_trip) == sorted(f"t{i}" for i in range(JOBS))
    assert {len(entries) for entries in by_trip.values()} == {1}
    assert {entries[0]["status"] for entries in by_trip.values()} == {200}
    earliest = min(entries[0]["time"] for entries in by_trip.values())
    assert earliest >= pause_ends, f"a deferred job ran {pause_ends - earliest:.3f}s before the pause ended"
    assert all(len(trip["reports"]) == 1 for trip in api.ledger())
    assert len(calls(api, "feedback")) == JOBS + 1

    def states() -> set[tuple[str, str]]:
        pipe = rdb.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "state", "attempts")
        return {tuple(fields) for fields in pipe.execute()}

    # a capture records its success just after publishing its report, which may already be done
    wait_for(lambda: {state for state, _ in states()} == {"succeeded"}, timeout=10, what="every capture to be recorded")
    assert states() == {("succeeded", "1")}
    assert record(rdb, probe)["attempts"] == "2"
    assert max(rss_deferred, rss_after) - rss_before < RSS_GROWTH_KIB, (
        f"worker RSS {rss_before} KiB before, {rss_deferred} KiB with {JOBS} jobs deferred, {rss_after} KiB after"
    )
