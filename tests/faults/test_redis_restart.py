"""Scenario 2, Redis restart under load: stopped and started on the same append-only file, it loses no job.

600 captures at 200 ms, a quarter of the calls answered ``503 retryAfter 3`` so
that jobs wait in the deferred set; two workers under payq's supervisor
(``python -m workers.stack``, the one ``payq demo`` uses). Redis is stopped
(a clean SIGTERM: the append-only file is flushed) while captures are in
flight and jobs are deferred, kept down for 3 s, and started again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from config.settings import Settings
from tasks.messages import QUEUES
from tasks.producer import Producer
from tests.faults.audit import FETCH_WINDOW_XFAIL, audit_captures, capture_jobs, first_call_after, records, settle, trip_of
from tests.faults.report import Figures, Recorder
from tests.support.fault_redis import FaultRedis
from tests.support.fault_workers import SWEEP_APP, AppWorker, SupervisedWorkers
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from workers import keys

CAPTURES = 600
DOWN_SECONDS = 3.0
VISIBILITY_TIMEOUT = 15
# Jobs left unfinished with nothing in Redis to run them count as lost after this long: time enough for a
# sweep that republishes jobs whose message was lost mid-fetch (one that waits 2 visibility timeouts,
# checking every visibility timeout) to have done so.
STRANDED_AFTER = 3 * VISIBILITY_TIMEOUT + 10
BACK_WITHIN = 15.0  # seconds from Redis answering again to the workers calling the API again
STORE = "s-restart"
RESCUE_VISIBILITY_TIMEOUT = 10  # the shortest payq allows


@pytest.mark.slow
def test_redis_stopped_and_started_under_load_loses_no_job_and_leaves_none_deferred(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], tmp_path: Path, fault_report: Recorder,
) -> None:
    started = time.monotonic()
    api = make_sandbox("--auto-register", "--latency-ms", "200")
    api.set_faults({"rules": [{"endpoint": "capture", "fault": "503 retryAfter 3", "probability": 0.25, "seed": 2}]})
    rdb = private_redis.client()
    rng = random.Random(2)
    amounts = {f"t{i:04d}": Decimal(rng.randint(1, 9_999_999)).scaleb(-2) for i in range(CAPTURES)}
    capture_ids = [f"capture:{STORE}:{t}" for t in amounts]
    workers = SupervisedWorkers(tmp_path / "stack", private_redis.url, api.url, count=2, app=SWEEP_APP, concurrency=8,
                                env={"PAYQ_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)})
    try:
        Producer(Settings(redis_url=private_redis.url)).publish(capture_jobs(STORE, amounts))

        # under load: captures answered and in flight, and jobs waiting in the deferred set
        def under_load() -> bool:
            done = sum(1 for r in records(rdb, capture_ids, "state") if r["state"] == "succeeded")
            return done >= CAPTURES // 4 and rdb.zcard(keys.DEFERRED) >= 10

        wait_for(under_load, timeout=120, interval=0.1, what="a quarter of the captures done and jobs deferred")
        deferred_at_stop = rdb.zcard(keys.DEFERRED)
        stopped_at = time.time()
        private_redis.stop()
        time.sleep(DOWN_SECONDS)  # the outage itself: what the scenario injects, not a wait for a result
        private_redis.start()
        back_at = time.time()
        rdb = private_redis.client()

        settled = settle(rdb, capture_ids, timeout=300, quiet=STRANDED_AFTER)
        restarts = workers.restarts()
        workers.wait_all_ready()
    finally:
        workers.stop()

    audit = audit_captures(api, rdb, STORE, amounts)
    calls_after = [e for entries in audit.capture_calls.values() for e in entries] + \
                  [e for entries in audit.report_calls.values() for e in entries]
    first_back = first_call_after(calls_after, back_at)
    # a call answered 200 twice is allowed only when the first answer came in around the outage: its outcome could not be recorded
    twice = {**{("capture", t): e for t, e in audit.answered_twice("capture").items()},
             **{("feedback", t): e for t, e in audit.answered_twice("feedback").items()}}
    unexplained = sorted(f"{op} {trip}" for (op, trip), entries in twice.items()
                         if not stopped_at - 2.0 <= entries[0]["time"] <= back_at)
    retried_503 = sum(1 for entries in audit.capture_calls.values() for e in entries if e["status"] == 503)
    fault_report.add(Figures(
        scenario=2, title="Redis restart under load", jobs=2 * CAPTURES,
        jobs_detail=f"{CAPTURES:,} captures + their reports, 200 ms API, {retried_503} answers 503 retryAfter 3",
        faults=f"redis-server stopped for {DOWN_SECONDS:g} s and started on its append-only file "
               f"({deferred_at_stop} jobs deferred at the stop); {restarts} worker restart(s) by the supervisor",
        lost=len(audit.lost), duplicates=sum(len(e) - 1 for e in twice.values()),
        duplicate_cause=f"answered while Redis was stopping, outcome not recorded; {len(unexplained)} otherwise",
        notes=(f"workers calling the API again {(first_back or back_at) - back_at:.1f} s after Redis was back; "
               f"{rdb.zcard(keys.DEFERRED)} left deferred"
               + (f"; LOST to kombu's fetch window: {sorted(settled.stranded)}" if settled.stranded else "")),
        seconds=time.monotonic() - started,
    ))

    assert settled.stuck is None, f"not settled after 300 s: {settled.stuck}"
    lost_otherwise = {t: why for t, why in audit.lost.items() if t not in {trip_of(j) for j in settled.stranded}}
    assert lost_otherwise == {}, f"lost {len(lost_otherwise)}: {dict(list(lost_otherwise.items())[:10])}"
    assert settled.lost_to_kombus_fetch_window(), settled.stranded
    assert len(settled.stranded) <= len(workers.names), "a worker has at most one fetch in flight when Redis goes away"
    assert rdb.zcard(keys.DEFERRED) == 0
    assert unexplained == [], "jobs answered twice that were not in flight at the outage"
    assert audit.differing_payloads() == []
    assert first_back is not None and first_back - back_at < BACK_WITHIN
    if settled.stranded:
        pytest.xfail(FETCH_WINDOW_XFAIL.format(n=len(settled.stranded), jobs=sorted(settled.stranded)))


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "kombu's Redis transport takes a message off its list (BRPOP) and records it as unacknowledged in a second "
    "command; a connection lost in between loses the message, and payq never publishes a job again whose record "
    "still says 'queued'. Seen in the restart scenario: ~1 run in 6 loses one job."))
def test_a_job_whose_message_was_fetched_but_never_recorded_still_runs(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., AppWorker],
) -> None:
    api = make_sandbox("--auto-register")
    rdb = private_redis.client()
    job_id = Producer(Settings(redis_url=private_redis.url)).enqueue_capture(
        storeId=STORE, shoppingTripId="t-fetched", amount={"amount": "3.00", "code": "USD"})
    # exactly what a worker's BRPOP does; its next command, recording the message as unacknowledged, never arrives
    assert rdb.rpop(QUEUES["capture"]) is not None
    make_worker(private_redis.url, api.url, env={"PAYQ_VISIBILITY_TIMEOUT": str(RESCUE_VISIBILITY_TIMEOUT)}, concurrency=1)

    # three visibility timeouts: ample for a sweep that republishes a job left 'queued' with no message
    wait_for(lambda: records(rdb, [job_id], "state")[0]["state"] == "succeeded", timeout=3 * RESCUE_VISIBILITY_TIMEOUT + 10,
             what="the job whose message was lost to run anyway")
