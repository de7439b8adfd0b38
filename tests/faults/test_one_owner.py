"""Scenario 9, one owner per job (issue 21): no API call made twice across a Redis restart or stop, and a stopped worker's jobs finished by another.

Every setting at its default and the plain ``celery -A workers.app worker``
(what a new user runs), against a real redis-server with its append-only
file. A job's holder keeps a lease that its heartbeat renews; a copy of a
running job calls nothing while the lease stands, and a worker that lost its
lease neither calls nor records an outcome (``tasks/store/leases.py``).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
import redis

from config.settings import Settings
from tasks.producer import Producer
from tasks.redis import keys
from tests.faults.audit import STRANDED_AFTER, audit_captures, calls_by_trip, capture_jobs, first_call_after, records, settle, trip_of
from tests.faults.report import Figures, Recorder
from tests.faults.test_killed_workers import DEFAULT_ENV, running_on
from tests.support.fault_redis import FaultRedis
from tests.support.fault_workers import FaultWorker
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess

CAPTURES = 60
LATENCY_MS = 300
IN_FLIGHT = 10  # captures calling the API when the fault strikes, at least (a busy machine spreads their starts)
LEASE = Settings.model_fields["lease_seconds"].default
# Seconds after a worker's stop within which a call it had sent may still arrive: well inside its leases' remaining
# four fifths (renewed every fifth of a lease), before which no other worker may take its jobs.
IN_TRANSIT = LEASE / 4


def plain_workers(make_worker: Callable[..., FaultWorker], redis_url: str, api_url: str, count: int = 2,
                  env: dict[str, str] | None = None) -> list[FaultWorker]:
    """``count`` plain ``celery worker`` processes, every setting at its default unless ``env`` says otherwise."""
    return [make_worker(redis_url, api_url, env={**DEFAULT_ENV, **(env or {})}, pool=None, concurrency=None) for _ in range(count)]


def captures_in_flight(rdb: redis.Redis, capture_ids: list[str]) -> int:
    """Captures begun and not yet recorded: their calls are under way."""
    return sum(1 for r in records(rdb, capture_ids, "state") if r["state"] == "running")


def publish_captures(redis_url: str, store: str) -> tuple[dict[str, Decimal], list[str]]:
    """Publish :data:`CAPTURES` captures of random amounts; returns trip -> amount, and the job ids."""
    rng = random.Random(21)
    amounts = {f"t{i:03d}": Decimal(rng.randint(1, 9_999_999)).scaleb(-2) for i in range(CAPTURES)}
    Producer(Settings(redis_url=redis_url)).publish(capture_jobs(store, amounts))
    return amounts, [f"capture:{store}:{t}" for t in amounts]


def outage_scenario(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
    fault_report: Recorder, store: str, fault: str, outage: Callable[[], None],
) -> None:
    """Captures in flight when ``outage`` befalls Redis: afterwards, every trip captured and reported once, no call made twice."""
    started = time.monotonic()
    api = make_sandbox("--auto-register", "--latency-ms", str(LATENCY_MS))
    workers = plain_workers(make_worker, private_redis.url, api.url)
    rdb = private_redis.client()
    amounts, capture_ids = publish_captures(private_redis.url, store)
    wait_for(lambda: captures_in_flight(rdb, capture_ids) >= IN_FLIGHT, timeout=60, interval=0.01,
             what=f"{IN_FLIGHT} captures to be calling the API at once")
    in_flight = captures_in_flight(rdb, capture_ids)
    outage()
    back_at = time.time()
    rdb = private_redis.client()

    settled = settle(rdb, capture_ids, timeout=180, quiet=STRANDED_AFTER)
    audit = audit_captures(api, rdb, store, amounts)
    first_back = first_call_after([e for calls in audit.report_calls.values() for e in calls], back_at)
    fault_report.add(Figures(
        scenario=9, title="one owner per job", jobs=2 * CAPTURES,
        jobs_detail=f"{CAPTURES} captures + their reports, {LATENCY_MS} ms API, defaults, 2 plain `celery worker`s: {fault}",
        faults=f"{fault} with {in_flight} captures in flight",
        lost=len(audit.lost) + len(settled.stranded), duplicates=audit.duplicates,
        duplicate_cause="none allowed: every call's holder kept its lease through the outage",
        notes=f"first report call {((first_back or back_at) - back_at):.1f} s after Redis was back; "
              f"{int(rdb.get(keys.RECOVERED) or 0)} jobs given back from lapsed leases",
        seconds=time.monotonic() - started,
    ))

    assert settled.stuck is None, f"not settled: {settled.stuck}"
    assert settled.stranded == {}, "jobs left to run with nothing in Redis to run them"
    assert audit.lost == {}, f"lost {len(audit.lost)}: {dict(list(audit.lost.items())[:10])}"
    assert {**audit.repeated("capture"), **audit.repeated("feedback")} == {}, "an API call was made twice"
    assert all(w.alive for w in workers), "a worker exited when Redis went away"


@pytest.mark.slow
@pytest.mark.timeout(600)  # pyproject's 300 s is too short on a machine other runs keep busy
def test_a_clean_redis_restart_with_captures_in_flight_calls_nothing_twice(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
    fault_report: Recorder,
) -> None:
    def restart() -> None:
        private_redis.stop()  # a clean shutdown: the append-only file holds every write
        time.sleep(1.1)  # the outage itself, as issue 21 found it: what the scenario injects, not a wait for a result
        private_redis.start()

    outage_scenario(private_redis, make_sandbox, make_worker, fault_report, "s-restart", "Redis shut down and started 1.1 s later",
                    restart)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_redis_stopped_for_5_s_with_captures_in_flight_calls_nothing_twice_and_loses_nothing(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
    fault_report: Recorder,
) -> None:
    def freeze() -> None:
        assert private_redis.process is not None
        private_redis.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(5.0)  # the outage itself: what the scenario injects
        finally:
            private_redis.process.send_signal(signal.SIGCONT)

    outage_scenario(private_redis, make_sandbox, make_worker, fault_report, "s-sigstop", "Redis SIGSTOPped for 5 s", freeze)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_worker_stopped_past_its_lease_loses_its_jobs_to_another_and_after_resuming_neither_calls_nor_records_for_them(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
    fault_report: Recorder,
) -> None:
    started = time.monotonic()
    api = make_sandbox("--auto-register", "--latency-ms", "3000")  # calls long enough to stop a worker in one
    workers = plain_workers(make_worker, private_redis.url, api.url)
    rdb = private_redis.client()
    amounts = {f"t{i}": Decimal(f"{i + 1}.50") for i in range(6)}
    Producer(Settings(redis_url=private_redis.url)).publish(capture_jobs("s-paused", amounts))
    capture_ids = [f"capture:s-paused:{t}" for t in amounts]

    def mid_call() -> FaultWorker | None:
        """A worker with a call on the wire: its job running, and the sandbox has the request."""
        found = records(rdb, capture_ids, "state", "worker", "attempts")
        called = calls_by_trip(api, "capture")
        return next((w for w in workers if any(trip_of(j) in called for j in running_on(found, capture_ids, w))), None)

    victim = wait_for(mid_call, timeout=60, interval=0.05, what="a worker to be calling the API")
    assert sum(1 for w in workers if w is not victim) == 1
    victim.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    stopped_at = time.time()
    held = running_on(records(rdb, capture_ids, "state", "worker", "attempts"), capture_ids, victim)
    try:
        # the victim's leases lapse, the other worker's housekeeping gives the jobs back, and it calls for them
        wait_for(lambda: all(r["state"] == "succeeded" for r in records(rdb, list(held), "state")), timeout=60,
                 what="the stopped worker's jobs to be finished by the other")
        given_back = time.time() - stopped_at
        as_settled = {job_id: rdb.hgetall(keys.job(job_id)) for job_id in held}  # by the other worker
    finally:
        victim.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    resumed_at = time.time()

    # each call that was on the wire comes back to the resumed worker, which finds its claim gone; a job it had
    # begun without calling yet, it finds taken before it calls
    def delivery_ended(job_id: str) -> bool:
        log = victim.log()
        return f"{job_id}: lost its lease" in log or f"payments.capture[{job_id}] succeeded" in log

    wait_for(lambda: all(delivery_ended(job_id) for job_id in held), timeout=60,
             what="the resumed worker to end its delivery of every job it held")

    settled = settle(rdb, capture_ids, timeout=120, quiet=STRANDED_AFTER)
    audit = audit_captures(api, rdb, "s-paused", amounts)
    # The victim's calls, read from the sandbox's log by arrival: a request the victim wrote just before the stop may be
    # logged a moment after it (its bytes in flight, the sandbox's loop busy), and the other worker calls for a held job
    # only once the victim's lease has lapsed, seconds later. The rest it had begun and not yet sent.
    on_the_wire = {job_id for job_id in held
                   if any(e["time"] < stopped_at + IN_TRANSIT for e in audit.capture_calls.get(trip_of(job_id), []))}
    not_sent = set(held) - on_the_wire
    held_trips = {trip_of(job_id) for job_id in held}
    after_resume = [e for trip in held_trips for e in audit.capture_calls.get(trip, []) if e["time"] >= resumed_at]
    fault_report.add(Figures(
        scenario=9, title="one owner per job", jobs=2 * len(amounts),
        jobs_detail=f"{len(amounts)} captures + their reports, 3 s API, defaults: a worker SIGSTOPped past its lease",
        faults=(f"1 SIGSTOP of a worker mid-call for {resumed_at - stopped_at:.1f} s ({len(on_the_wire)} calls on the wire, "
                f"{len(not_sent)} jobs begun and not yet sent)"),
        lost=len(audit.lost), duplicates=audit.duplicates,
        duplicate_cause=f"the calls on the wire at the stop; {len(after_resume)} calls by the resumed worker",
        notes=f"its jobs finished by the other worker {given_back:.1f} s after the stop",
        seconds=time.monotonic() - started,
    ))

    assert on_the_wire, "the worker was stopped between calls"
    assert settled.stuck is None and settled.stranded == {}, f"not settled: {settled}"
    assert audit.lost == {}, f"lost: {audit.lost}"
    assert after_resume == [], "the resumed worker called for jobs it no longer held"
    assert audit.repeated("capture") == {trip_of(job_id): 1 for job_id in on_the_wire}, "only the calls on the wire are repeated"
    assert audit.repeated("feedback") == {}
    assert {job_id: rdb.hgetall(keys.job(job_id)) for job_id in held} == as_settled, "an outcome was recorded by the resumed worker"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_deferred_job_and_one_slower_than_a_lease_are_each_called_as_often_as_their_outcomes_ask(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
) -> None:
    # Every setting at its default. The deferred job's message is acknowledged when it is deferred, and a
    # new one published when it is due: nothing else brings it back meanwhile.
    retry_after = 8
    api = make_sandbox("--auto-register")
    api.set_faults({"rules": [
        {"endpoint": "capture", "shoppingTripId": "t-deferred", "sequence": [f"503 retryAfter {retry_after}"]},
        # inside the 10 s read timeout, near the 13 s task time limit, and longer than half a lease: its lease
        # must be renewed by the heartbeat while it runs
        {"endpoint": "capture", "shoppingTripId": "t-slow", "latency_ms": 9500},
    ]})
    plain_workers(make_worker, private_redis.url, api.url)
    rdb = private_redis.client()
    amounts = {"t-deferred": Decimal("3.00"), "t-slow": Decimal("4.00")}
    Producer(Settings(redis_url=private_redis.url)).publish(capture_jobs("s-long", amounts))
    slow = "capture:s-long:t-slow"
    first_lease = wait_for(lambda: rdb.zscore(keys.LEASES, slow), timeout=60, interval=0.05, what="the slow capture to begin")
    wait_for(lambda: (rdb.zscore(keys.LEASES, slow) or 0) > first_lease, timeout=LEASE, interval=0.1,
             what="the slow capture's lease to be renewed by its worker's heartbeat")

    settled = settle(rdb, [f"capture:s-long:{t}" for t in amounts], timeout=120, quiet=STRANDED_AFTER)
    audit = audit_captures(api, rdb, "s-long", amounts)

    assert settled.stuck is None and settled.stranded == {}, f"not settled: {settled}"
    assert audit.lost == {}
    deferred_calls = audit.capture_calls["t-deferred"]
    assert [e["status"] for e in deferred_calls] == [503, 200]
    assert deferred_calls[1]["time"] - deferred_calls[0]["time"] > retry_after
    assert [e["status"] for e in audit.capture_calls["t-slow"]] == [200]
    assert audit.repeated("feedback") == {}
    assert records(rdb, [slow], "recoveries") == [{"recoveries": None}], "the slow capture was given back while it ran"
