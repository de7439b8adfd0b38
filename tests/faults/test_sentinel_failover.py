"""Redis on Sentinel (issue 22): a failover loses no acknowledged job and calls nothing twice.

One primary, one replica and three Sentinels (tests/support/sentinel_group.py),
two real workers, ``payq serve`` and the ``payq`` command, all given only the
Sentinels' addresses and ``PAYQ_REDIS_MIN_REPLICAS=1``: every answer payq gives
waits for the replica (``WAIT``), and below one replica in sync payq refuses.
The primary is SIGKILLed (a crash) while captures are enqueued and run; the
Sentinels promote the replica in a few seconds. Until the old primary is back,
as a replica of the new one, nothing can be confirmed: enqueues are refused
(exit 75 / 503) and workers take no jobs. (With the default floor, 0, payq goes
on with the primary alone: ``test_degraded.py``.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from config.settings import Settings
from payapi.operations import Operation
from payq.serve.access import digest, new_token
from tasks.jobs.messages import build_message
from tasks.producer import Producer
from tasks.redis import keys
from tests.faults.audit import CaptureAudit, audit_captures, calls_by_trip, capture_jobs
from tests.support.names import path_of
from tests.support.payq_cli import run_payq
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.sentinel_group import MASTER, SentinelGroup
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess

# one Sentinel group, two workers and payq serve for the module: its tests go to one xdist process (make test: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("sentinel")
TOKEN = new_token()
BATCH = 10  # captures per enqueue: one `payq enqueue --file`, or that many POST /v1/jobs
# Jobs settle within seconds of the replica's return; a job claimed on the old primary, whose claim the new one
# never saw, waits for its lease (a worker restarted by the failover gives back what its in-flight lists held)
SETTLED_WITHIN = 60
EXIT_TEMPFAIL = 75
FLOOR = {"PAYQ_REDIS_MIN_REPLICAS": "1"}


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    """The Redis servers and Sentinels, shared by the module (each test leaves both servers up and in sync)."""
    servers = SentinelGroup()
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    """The payment API, slow enough (50 ms a call) that calls are in flight when Redis is killed."""
    with SandboxProcess("--auto-register", "--latency-ms", "50") as process:
        yield process


@pytest.fixture(scope="module")
def payq_processes(group: SentinelGroup, sandbox: SandboxProcess) -> Iterator[tuple[list[WorkerProcess], ServeProcess]]:
    """Two workers and ``payq serve``, on the Sentinels."""
    master = {"PAYQ_REDIS_SENTINEL_MASTER": MASTER, **FLOOR}
    workers = [WorkerProcess(group.url, sandbox.url, env=master, concurrency=8) for _ in range(2)]
    serve = ServeProcess(group.url, env={**master, "PAYQ_INTAKE_TOKENS": json.dumps({digest(TOKEN): ["s-cli", "s-http", "s-books",
                                                                                                       "s-alone", "s-wait"]})})
    yield workers, serve
    serve.stop()
    for worker in workers:
        worker.stop()
        worker.log_path.unlink(missing_ok=True)


@pytest.fixture
def stack(group: SentinelGroup, sandbox: SandboxProcess, payq_processes: tuple[list[WorkerProcess], ServeProcess]) -> ServeProcess:
    """Both Redis servers up and in sync, the sandbox's books empty; ``payq serve``."""
    group.wait_in_sync()
    sandbox.reset()
    return payq_processes[1]


def capture(store: str, trip: str, amount: Decimal) -> dict[str, Any]:
    """A capture job's JSON."""
    return {"operation": "capture", "storeId": store, "shoppingTripId": trip, "amount": {"amount": format(amount, "f"), "code": "USD"}}


def payq(group: SentinelGroup, *args: str, stdin: str | None = None) -> Any:
    """The ``payq`` command on the Sentinels, with its default patience for an unreachable Redis."""
    return run_payq(group.url, *args, stdin=stdin, env={"PAYQ_REDIS_SENTINEL_MASTER": MASTER, **FLOOR}, retry_seconds=3.0)


@dataclass
class Enqueuer:
    """Sends batches of captures, through the CLI and POST /v1/jobs in turn, each until it is acknowledged."""

    group: SentinelGroup
    serve: ServeProcess
    tmp: Path
    amounts: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (store, trip) of every acknowledged capture
    refusals: list[str] = field(default_factory=list)  # how each refused attempt said so
    bad_refusals: list[str] = field(default_factory=list)  # refusals that did not say so properly
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        """Enqueue batches until told to stop (an error is kept for the test to raise)."""
        try:
            self._run()
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def _run(self) -> None:
        number = 0
        while not self.stop.is_set():
            store = "s-cli" if number % 2 == 0 else "s-http"
            batch = {(store, f"t{number:03d}-{i}"): Decimal(100 + number * BATCH + i).scaleb(-2) for i in range(BATCH)}
            deadline = time.monotonic() + 60
            while not self._send(number, batch):
                if time.monotonic() > deadline:
                    raise AssertionError(f"batch {number} refused for 60 s: {self.refusals[-3:]}")
                time.sleep(0.2)  # a store backend's resend, not a wait for a result
            self.amounts.update(batch)
            number += 1

    def _send(self, number: int, batch: dict[tuple[str, str], Decimal]) -> bool:
        jobs = [capture(store, trip, amount) for (store, trip), amount in batch.items()]
        if number % 2 == 0:
            done = payq(self.group, "enqueue", "--file", "-", stdin="\n".join(json.dumps(j) for j in jobs))
            if done.returncode == 0:
                return True
            if done.returncode in (1, EXIT_TEMPFAIL) and "error:" in done.stderr:
                self.refusals.append(f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1]}")
            else:
                self.bad_refusals.append(f"exit {done.returncode}: {done.stderr[-500:]}")
            return False
        sent = True
        for job in jobs:
            answer = self.serve.request("POST", "/v1/jobs", json=job, headers={"Authorization": f"Bearer {TOKEN}"})
            if answer.status_code in (200, 202):  # 200: enqueued before (an earlier attempt of this batch), the same job
                continue
            sent = False
            if answer.status_code == 503 and answer.headers.get("Retry-After") and "detail" in answer.json():
                self.refusals.append(f"HTTP 503: {answer.json()['detail']}")
            else:
                self.bad_refusals.append(f"HTTP {answer.status_code}: {answer.text[:500]}")
        return sent


def succeeded(rdb: redis.Redis, job_ids: list[str]) -> bool:
    pipe = rdb.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(keys.job(job_id), "state")
    return all(state == "succeeded" for state in pipe.execute())


def settled(sandbox: SandboxProcess, rdb: redis.Redis, store: str, amounts: dict[str, Decimal]) -> CaptureAudit:
    """Wait until every capture of ``amounts`` and its report succeeded, in Redis and at the API; their audit."""
    def done() -> CaptureAudit | None:
        audit = audit_captures(sandbox, rdb, store, amounts)
        return None if audit.lost else audit

    return wait_for(done, timeout=SETTLED_WITHIN, interval=0.5, what=f"the captures of {store} and their reports")


def primary_client(group: SentinelGroup) -> redis.Redis:
    return group.primary().client()


def dead_letters(rdb: redis.Redis, *stores: str) -> list[str]:
    """The dead letters of jobs of ``stores`` (the module's tests share one Redis)."""
    return [job_id for job_id in rdb.hkeys(keys.DEAD_LETTERS) if job_id.split(":")[1] in stores]


def test_a_primary_killed_mid_run_loses_no_acknowledged_capture_and_calls_none_twice(
    group: SentinelGroup, sandbox: SandboxProcess, stack: ServeProcess, tmp_path: Path,
) -> None:
    failovers = group.failovers()
    enqueuer = Enqueuer(group, stack, tmp_path)
    thread = threading.Thread(target=enqueuer.run, daemon=True)
    thread.start()
    # mid-run: batches acknowledged and captures both done and still to do
    wait_for(lambda: len(enqueuer.amounts) >= 3 * BATCH and len(sandbox.requests(path_of("capture"))) >= BATCH, timeout=30,
             what="captures enqueued and called")
    old = group.kill_primary()
    group.wait_promoted(old)
    group.bring_back(old, as_replica=True)
    group.wait_in_sync()
    acknowledged_at_sync = len(enqueuer.amounts)
    wait_for(lambda: len(enqueuer.amounts) >= acknowledged_at_sync + 2 * BATCH, timeout=30, what="two more batches acknowledged")
    enqueuer.stop.set()
    thread.join(timeout=60)
    if enqueuer.error is not None:
        raise enqueuer.error

    rdb = primary_client(group)
    for store in ("s-cli", "s-http"):
        audit = settled(sandbox, rdb, store, {trip: amount for (s, trip), amount in enqueuer.amounts.items() if s == store})
        assert audit.duplicates == 0, f"{store}: called twice: {audit.repeated('capture')} {audit.repeated('feedback')}"
    assert group.failovers() == failovers + 1, "the Sentinels failed over more than once (the machine too loaded?)"
    assert enqueuer.bad_refusals == []
    assert enqueuer.refusals, "no enqueue was refused while no replica could confirm it"
    assert dead_letters(rdb, "s-cli", "s-http") == []


def test_a_replayed_dead_letter_and_a_waiting_refund_across_a_failover_leave_books_that_agree_with_the_api(
    group: SentinelGroup, sandbox: SandboxProcess, stack: ServeProcess,
) -> None:
    store = "s-books"
    # one capture refused for good (a dead letter to replay), one told to come back in 5 s (its refund waits for it)
    sandbox.set_faults({"rules": [{"endpoint": "capture", "shoppingTripId": "dead", "sequence": ["400"]},
                                  {"endpoint": "capture", "shoppingTripId": "held", "sequence": ["503 retryAfter 5"]}]})
    jobs = [capture(store, "dead", Decimal("12.00")), capture(store, "held", Decimal("10.00")),
            {"operation": "refund", "storeId": store, "shoppingTripId": "held", "amount": {"amount": "4.00", "code": "USD"},
             "refundReasonCode": "DAMAGED_ITEM", "refundRequestId": "7d0f1c2e-3b4a-4c5d-8e6f-0a1b2c3d4e5f"}]
    enqueued = payq(group, "enqueue", "--file", "-", stdin="\n".join(json.dumps(j) for j in jobs))
    assert enqueued.returncode == 0, enqueued.stderr
    refund_id = enqueued.stdout.split()[2]
    rdb = primary_client(group)
    wait_for(lambda: rdb.hexists(keys.DEAD_LETTERS, f"capture:{store}:dead") and rdb.hget(keys.job(f"capture:{store}:held"), "state") == "deferred",
             what="one capture dead-lettered, the other deferred")
    assert rdb.hget(keys.job(refund_id), "state") == "waiting"  # for its trip's capture

    failovers = group.failovers()
    old = group.kill_primary()
    group.wait_promoted(old)
    group.bring_back(old, as_replica=True)
    group.wait_in_sync()
    assert group.failovers() == failovers + 1
    sandbox.set_faults({"rules": []})
    replayed = payq(group, "dlq", "replay", f"capture:{store}:dead")
    assert replayed.returncode == 0, replayed.stderr

    rdb = primary_client(group)
    wait_for(lambda: succeeded(rdb, [f"capture:{store}:dead", f"capture:{store}:held"])
             and all(r["state"] == "succeeded" for r in trip_json(group, store, "held")["refunds"]),
             timeout=SETTLED_WITHIN, interval=0.5, what="the replayed capture, the held capture and its refund")
    ledger = {t["shoppingTripId"]: t for t in sandbox.ledger() if t["storeId"] == store}
    for trip in ("dead", "held"):
        books = trip_json(group, store, trip)
        api = ledger[trip]
        assert books["captured"] == api["captured"]["amount"]
        assert Decimal(books["refunded"]) == sum((Decimal(r["amount"]) for r in api["refunds"]), Decimal(0))
        assert books["deadLetters"] == []
    assert ledger["held"]["refunds"] and len(ledger["held"]["refunds"]) == 1
    calls = {op: calls_by_trip(sandbox, op) for op in (Operation.CAPTURE, Operation.REFUND)}
    assert [c["status"] for c in calls[Operation.CAPTURE]["dead"]] == [400, 200]
    assert [c["status"] for c in calls[Operation.CAPTURE]["held"]] == [503, 200]
    assert [c["status"] for c in calls[Operation.REFUND]["held"]] == [200]


def trip_json(group: SentinelGroup, store: str, trip: str) -> dict[str, Any]:
    done = payq(group, "trip", store, trip, "--json")
    assert done.returncode == 0, done.stderr
    view: dict[str, Any] = json.loads(done.stdout)
    return view


def test_what_the_old_primary_held_alone_never_runs_when_it_comes_back_as_a_replica(
    group: SentinelGroup, sandbox: SandboxProcess, stack: ServeProcess,
) -> None:
    store = "s-alone"
    acknowledged = {f"t{i}": Decimal(200 + i).scaleb(-2) for i in range(BATCH)}
    # every capture answered 503 retryAfter 2 once: at the kill they wait in the deferred set, on both servers
    sandbox.set_faults({"rules": [{"endpoint": "capture", "storeId": store, "per_trip": True, "sequence": ["503 retryAfter 2"]}]})
    enqueued = payq(group, "enqueue", "--file", "-", stdin="\n".join(json.dumps(capture(store, t, a)) for t, a in acknowledged.items()))
    assert enqueued.returncode == 0, enqueued.stderr
    rdb = primary_client(group)
    wait_for(lambda: all(rdb.hget(keys.job(f"capture:{store}:{t}"), "state") == "deferred" for t in acknowledged), what="the captures deferred")

    failovers = group.failovers()
    old = group.kill_primary()
    group.wait_promoted(old)
    group.bring_back(old, as_replica=False)  # on its append-only file, as the primary it was, until the Sentinels demote it
    # what only it holds: captures written to it alone (no payq process asks it: the Sentinels name another primary),
    # and a copy of each acknowledged capture's message back on its queue
    alone = {f"a{i}": Decimal("9.99") for i in range(3)}
    Producer(Settings(redis_url=old.url)).publish(capture_jobs(store, alone))
    stale = old.client()
    for job in capture_jobs(store, acknowledged):
        stale.lpush("payments.capture", build_message(job.operation, job.job_id, job.kwargs))
    group.wait_in_sync()  # the Sentinels demote it, and it copies the new primary's data over its own

    rdb = primary_client(group)
    audit = settled(sandbox, rdb, store, acknowledged)
    assert group.failovers() == failovers + 1, "the Sentinels failed over more than once (the machine too loaded?)"
    assert old.client().execute_command("ROLE")[0] == "slave"
    assert {trip: [c["status"] for c in audit.capture_calls[trip]] for trip in acknowledged} == {t: [503, 200] for t in acknowledged}
    assert not any(trip in audit.capture_calls for trip in alone)
    assert audit.repeated("feedback") == {}
    assert not any(rdb.exists(keys.job(f"capture:{store}:{t}")) for t in alone)
    assert dead_letters(rdb, store) == []


def test_with_the_replica_stopped_an_enqueue_is_refused_whole_and_nothing_is_called_until_it_is_back(
    group: SentinelGroup, sandbox: SandboxProcess, stack: ServeProcess, payq_processes: tuple[list[WorkerProcess], ServeProcess],
) -> None:
    store = "s-wait"
    workers = payq_processes[0]
    logged = [len(w.log()) for w in workers]
    replica = group.replica()
    replica.stop()
    # below the floor, each worker says so once and takes no work
    wait_for(lambda: all("degraded: too few Redis replicas in sync" in w.log()[n:] for w, n in zip(workers, logged, strict=True)),
             timeout=10, what="both workers to stop taking work")
    try:
        cli = payq(group, "enqueue", "--file", "-", stdin="\n".join(json.dumps(capture(store, f"c{i}", Decimal("3.00"))) for i in range(3)))
        http = stack.request("POST", "/v1/jobs", json=capture(store, "h0", Decimal("3.00")), headers={"Authorization": f"Bearer {TOKEN}"})
        rdb = primary_client(group)
        ids = [f"capture:{store}:c{i}" for i in range(3)] + [f"capture:{store}:h0"]
        records = [rdb.hgetall(keys.job(job_id)) for job_id in ids]
        calls_while_down = sandbox.requests(path_of("capture"))
        claimed_while_down = [job_id for job_id in ids if rdb.hget(keys.job(job_id), "state") != "queued"]
        stats_while_down = payq(group, "stats").stdout
    finally:
        group.bring_back(replica, as_replica=True)

    assert cli.returncode == EXIT_TEMPFAIL
    assert "PAYQ_REDIS_MIN_REPLICAS" in cli.stderr and "send it again" in cli.stderr
    assert http.status_code == 503 and http.headers["Retry-After"]
    assert "PAYQ_REDIS_MIN_REPLICAS" in http.json()["detail"]
    # written whole or not at all: every record complete, each with its message
    assert all(r.get("op") == "capture" and r.get("kwargs") for r in records), records
    assert calls_while_down == [] and claimed_while_down == []

    group.wait_in_sync()
    primary = f"127.0.0.1:{group.primary().port}"
    assert f"redis: primary {primary}, replicas in sync 0 of 0 (PAYQ_REDIS_MIN_REPLICAS 1: NOT MET" in stats_while_down
    assert f"redis: primary {primary}, replicas in sync 1 of 1 (PAYQ_REDIS_MIN_REPLICAS 1)" in payq(group, "stats").stdout
    resent = payq(group, "enqueue", "--file", "-", stdin="\n".join(json.dumps(capture(store, f"c{i}", Decimal("3.00"))) for i in range(3)))
    assert resent.returncode == 0, resent.stderr
    assert stack.request("POST", "/v1/jobs", json=capture(store, "h0", Decimal("3.00")),
                         headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200  # the same job, enqueued before
    rdb = primary_client(group)
    wait_for(lambda: succeeded(rdb, ids), timeout=SETTLED_WITHIN, interval=0.5, what="the captures once the replica is back")
    captures = calls_by_trip(sandbox, Operation.CAPTURE)
    assert {trip: len(captures[trip]) for trip in ("c0", "c1", "c2", "h0")} == {"c0": 1, "c1": 1, "c2": 1, "h0": 1}
