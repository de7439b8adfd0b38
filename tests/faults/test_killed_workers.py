"""Scenario 1, killed workers: SIGKILL mid-run loses nothing, repeats only the calls that were in flight, and holds nothing back.

A backlog of captures fed in batches against a sandbox answering after 200 ms,
three workers of 8 threads; one of them is SIGKILLed three times while it
holds messages (fetched into its in-flight lists, begun or not) and a new one
started each time. A worker's fetched messages stay in Redis (issue 29): a
live worker's sweep gives them back once the dead one's heartbeat is a lease
old, whatever the depth of the queue, at the head of their queues. Before
issue 29 the ones it had fetched and not begun came back only through the
63 s lost-message sweep, and only once their queue ran dry. One more scenario
runs what an operator gets: every setting at its default and the plain
``celery -A workers.app worker``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import redis

from config.settings import Settings
from payapi.operations import QUEUES
from tasks.producer import Producer
from tasks.redis import keys
from tests.faults.audit import (
    STRANDED_AFTER,
    CaptureAudit,
    audit_captures,
    capture_jobs,
    chained_reports,
    first_call_after,
    given_back,
    records,
    settle,
    trip_of,
)
from tests.faults.report import Figures, Recorder
from tests.support.fault_redis import FaultRedis
from tests.support.fault_workers import FaultWorker
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import TEST_ENV

CAPTURES = 2000
BATCH = 100  # captures per enqueue, one batch every FEED_EVERY seconds: the backlog grows while workers die
FEED_EVERY = 0.5
KILLS = 3
STORE = "s-kill"
LEASE = Settings.model_fields["lease_seconds"].default
# Seconds from a worker's death to the next API call of every job it held, begun or not (issue 29's target with the
# defaults): its heartbeat stopped at most a fifth of a lease before the kill, a live steady worker's sweep looks every
# second, and the jobs go to the head of their queues.
BACK_WITHIN = 12.0
OVERTAKEN_AT_MOST = 20.0  # seconds a job may be served after a job of a later batch was


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: when, whom, the jobs it was running (record ``running``, with their attempts), and every job whose message it held."""

    at: float
    worker: str
    in_flight: dict[str, int]
    held: set[str] = field(default_factory=set)


def running_on(rdb_records: list[dict[str, str | None]], job_ids: list[str], worker: FaultWorker) -> dict[str, int]:
    """Jobs whose record says a call is under way on ``worker``: job id -> attempts so far."""
    return {
        job_id: int(r["attempts"] or 0) for job_id, r in zip(job_ids, rdb_records, strict=True)
        if r["state"] == "running" and (r["worker"] or "").startswith(worker.hostname_prefix())
    }


def worker_id(rdb: redis.Redis, worker: FaultWorker) -> str:
    """The heartbeat id (host.pid.random) of ``worker``'s main process: what its in-flight lists are named after."""
    def found() -> str | None:
        return next((w for w in rdb.zrange(keys.WORKERS, 0, -1) if w.rsplit(".", 2)[-2] == str(worker.pid)), None)

    return wait_for(found, timeout=30, what=f"{worker.name}'s heartbeat")


def held_by(rdb: redis.Redis, worker: str) -> set[str]:
    """The jobs whose messages ``worker`` holds in its in-flight lists (fetched, begun or not)."""
    return {json.loads(m)["headers"]["id"] for queue in QUEUES for m in rdb.lrange(keys.inflight(worker, queue), 0, -1)}


def steady(rdb: redis.Redis, worker: str) -> bool:
    """Whether ``worker`` has beaten without a break for a lease: it may judge a dead worker's lease (tasks/store/leases.py)."""
    seconds, micros = rdb.time()
    since = rdb.hget(keys.WORKERS_STEADY, worker)
    return since is not None and seconds + micros / 1e6 - float(since) >= LEASE


def came_back_after(kill: Kill, jobs: set[str], audit: CaptureAudit, rdb: redis.Redis) -> float:
    """Seconds from the kill until the last of ``jobs`` was called again (or, needing no call, moved on)."""
    back = []
    for job_id in jobs:
        calls = (audit.report_calls if job_id.startswith("feedback:") else audit.capture_calls).get(trip_of(job_id), [])
        again = first_call_after(calls, kill.at)
        if again is None:  # finished before the kill (only its acknowledgement was pending): its record moved on instead
            (record,) = records(rdb, [job_id], "updated_at")
            again = float(record["updated_at"] or kill.at)
        back.append(again - kill.at)
    return max(back, default=0.0)


def overtaken(audit: CaptureAudit, batch_of: dict[str, int]) -> float:
    """The most seconds a capture was first called after a capture of a later batch had been."""
    firsts = [(min(e["time"] for e in entries), batch_of[trip]) for trip, entries in audit.capture_calls.items() if trip in batch_of]
    earliest: dict[int, float] = {}
    for at, batch in firsts:
        earliest[batch] = min(at, earliest.get(batch, at))
    worst = 0.0
    for at, batch in firsts:
        later = [t for b, t in earliest.items() if b > batch and t < at]
        if later:
            worst = max(worst, at - min(later))
    return worst


@pytest.mark.slow
@pytest.mark.timeout(600)  # pyproject's 300 s is too short on a machine other runs keep busy
def test_a_backlog_fed_in_batches_while_workers_die_loses_nothing_and_every_held_message_runs_again_within_12_s(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
    fault_report: Recorder,
) -> None:
    started = time.monotonic()
    api = make_sandbox("--auto-register", "--latency-ms", "200")
    rdb = private_redis.client()
    rng = random.Random(1)
    amounts = {f"t{i:04d}": Decimal(rng.randint(1, 9_999_999)).scaleb(-2) for i in range(CAPTURES)}
    trips = list(amounts)
    batch_of = {trip: i // BATCH for i, trip in enumerate(trips)}
    capture_ids = [f"capture:{STORE}:{t}" for t in trips]

    everyone: list[FaultWorker] = []

    def start() -> FaultWorker:
        everyone.append(make_worker(private_redis.url, api.url, concurrency=8))
        return everyone[-1]

    anchor = start()  # never killed: beating steadily, it gives back what the others held
    anchor_id = worker_id(rdb, anchor)
    victims = [start(), start()]
    wait_for(lambda: steady(rdb, anchor_id), timeout=60, interval=0.5, what="the surviving worker to beat steadily for a lease")

    producer = Producer(Settings(redis_url=private_redis.url))

    def feed() -> None:
        for i in range(0, CAPTURES, BATCH):
            producer.publish(capture_jobs(STORE, {t: amounts[t] for t in trips[i:i + BATCH]}))
            time.sleep(FEED_EVERY)  # the feed's own pace: a batch every so often, as store backends send them

    feeding = threading.Thread(target=feed, daemon=True)
    feeding.start()

    kills: list[Kill] = []
    for k in range(KILLS):
        slot = k % 2
        victim = victims[slot]
        victim_id = worker_id(rdb, victim)

        def victim_busy(victim: FaultWorker = victim) -> dict[str, int]:
            ids = capture_ids + chained_reports(rdb, capture_ids)
            return running_on(records(rdb, ids, "state", "worker", "attempts"), ids, victim)

        wait_for(victim_busy, timeout=60, interval=0.1, what=f"worker {victim.name} to be calling the API")
        victim.kill()
        at = time.time()
        ids = capture_ids + chained_reports(rdb, capture_ids)
        kills.append(Kill(at, victim.name, running_on(records(rdb, ids, "state", "worker", "attempts"), ids, victim),
                          held_by(rdb, victim_id)))
        victims[slot] = start()
    feeding.join(timeout=120)

    settled = settle(rdb, capture_ids, timeout=300, quiet=STRANDED_AFTER)

    audit = audit_captures(api, rdb, STORE, amounts)
    in_flight_trips = {trip_of(job_id) for kill in kills for job_id in kill.in_flight}
    repeated = {**{("capture", t): n for t, n in audit.repeated("capture").items()},
                **{("feedback", t): n for t, n in audit.repeated("feedback").items()}}
    unexplained = sorted(f"{op} {trip}" for op, trip in repeated if trip not in in_flight_trips)
    put_back, gave_back = given_back(w.log() for w in everyone)
    came_back = [came_back_after(kill, kill.held | set(kill.in_flight), audit, rdb) for kill in kills]
    not_begun = sum(len(kill.held - set(kill.in_flight)) for kill in kills)
    worst_overtaken = overtaken(audit, batch_of)
    fault_report.add(Figures(
        scenario=1, title="killed workers", jobs=2 * CAPTURES,
        jobs_detail=f"{CAPTURES:,} captures + their reports fed in batches of {BATCH} every {FEED_EVERY:g} s, 200 ms API",
        faults=(f"{KILLS} SIGKILLs of a worker mid-call ({sum(len(k.held) for k in kills)} messages held: "
                f"{sum(len(k.in_flight) for k in kills)} running, {not_begun} fetched and not begun)"),
        lost=len(audit.lost), duplicates=audit.duplicates,
        duplicate_cause=f"calls in flight at a kill, same body; {len(unexplained)} otherwise",
        notes=(f"held messages called again after {', '.join(f'{s:.1f}' for s in came_back)} s (lease {LEASE:g} s; "
               f"{put_back} put back unbegun, {gave_back} begun given back); overtaken by a later batch {worst_overtaken:.1f} s at most"
               + (f"; LOST, nothing left to run them: {sorted(settled.stranded)}" if settled.stranded else "")),
        seconds=time.monotonic() - started,
    ))

    assert settled.stuck is None, f"not settled after 300 s: {settled.stuck}"
    assert settled.stranded == {}, "jobs left to run with nothing in Redis to run them"
    assert audit.lost == {}, f"lost {len(audit.lost)}: {dict(list(audit.lost.items())[:10])}"
    assert audit.differing_payloads() == [], "a repeated call must carry the same body"
    assert all(kill.in_flight for kill in kills)
    assert max(came_back) < BACK_WITHIN, came_back
    assert worst_overtaken < OVERTAKEN_AT_MOST
    assert unexplained == [], "repeated calls for jobs that were not in flight at a kill"


# What an operator gets (issue #13): every setting at its default, including those the other test workers shorten
# (their HTTP read timeout, backoff and Retry-After handling), and the plain command: no --pool, no --concurrency.
DEFAULT_ENV = {name: str(Settings.model_fields[name.removeprefix("PAYQ_").lower()].default)
               for name in TEST_ENV if name.startswith("PAYQ_")}


@pytest.mark.slow
@pytest.mark.timeout(600)  # pyproject's 300 s is too short on a machine other runs keep busy
def test_with_default_settings_a_killed_workers_jobs_are_called_again_within_12_seconds(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
    fault_report: Recorder,
) -> None:
    started = time.monotonic()
    captures = 6
    api = make_sandbox("--auto-register", "--latency-ms", "3000")  # calls long enough to kill a worker in one
    workers = [make_worker(private_redis.url, api.url, env=DEFAULT_ENV, pool=None, concurrency=None) for _ in range(2)]
    rdb = private_redis.client()
    ids = [worker_id(rdb, w) for w in workers]
    # a worker judges a dead one only once it has beaten steadily for a lease: as in any deployment running for a while
    wait_for(lambda: all(steady(rdb, w) for w in ids), timeout=60, interval=0.5, what="both workers to beat steadily for a lease")
    amounts = {f"t{i}": Decimal(f"{i + 1}.25") for i in range(captures)}
    Producer(Settings(redis_url=private_redis.url)).publish(capture_jobs("s-default", amounts))
    capture_ids = [f"capture:s-default:{t}" for t in amounts]

    def busiest() -> tuple[FaultWorker, dict[str, int]] | None:
        found = records(rdb, capture_ids, "state", "worker", "attempts")
        running = [(w, on) for w in workers if (on := running_on(found, capture_ids, w))]
        return max(running, key=lambda pair: len(pair[1])) if running else None

    victim, _ = wait_for(busiest, timeout=60, interval=0.1, what="a worker to be calling the API")
    victim.kill()
    kill = Kill(time.time(), victim.name, running_on(records(rdb, capture_ids, "state", "worker", "attempts"), capture_ids, victim),
                held_by(rdb, ids[workers.index(victim)]))

    settled = settle(rdb, capture_ids, timeout=120, quiet=STRANDED_AFTER)
    audit = audit_captures(api, rdb, "s-default", amounts)
    back = came_back_after(kill, kill.held | set(kill.in_flight), audit, rdb)
    unexplained = sorted(t for t in {**audit.repeated("capture"), **audit.repeated("feedback")} if t not in
                         {trip_of(job_id) for job_id in kill.in_flight})
    fault_report.add(Figures(
        scenario=1, title="killed workers", jobs=2 * captures,
        jobs_detail=f"{captures} captures + their reports, 3 s API, every setting at its default, 2 plain `celery worker`s",
        faults=f"1 SIGKILL of a worker mid-call ({len(kill.in_flight)} jobs in flight, {len(kill.held)} messages held)",
        lost=len(audit.lost), duplicates=audit.duplicates,
        duplicate_cause=f"default settings: calls in flight at the kill; {len(unexplained)} otherwise",
        notes=f"with the default lease ({LEASE:g} s) its jobs were called again after {back:.1f} s",
        seconds=time.monotonic() - started,
    ))

    assert kill.in_flight, "the worker was killed between calls"
    assert settled.stuck is None and settled.stranded == {}, f"not settled: {settled}"
    assert audit.lost == {}, f"lost: {audit.lost}"
    assert back < BACK_WITHIN, f"the killed worker's jobs were called again {back:.1f} s after the kill"
    assert unexplained == [], "repeated calls for jobs that were not in flight at the kill"
