"""Degraded, not stopped (issue 29): a primary, one replica and three Sentinels; the primary SIGKILLed under load, never back.

The commonest Sentinel deployment, after a lost host: Sentinel promotes the
replica, which is then alone. With the defaults (``PAYQ_REDIS_MIN_REPLICAS``
0) payq goes on with the primary alone and says it is degraded; with the floor
raised to 1 it refuses enqueues, and its workers take no jobs, quietly, until
a replica is attached again. Real redis-servers, Sentinels, workers and
``payq serve``; log lines are counted at WARNING and above, tracebacks
included (what a worker prints at its default level).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from config.settings import Settings
from payapi.errors import NotReplicated, PayqError
from payq.serve.access import digest, new_token
from tasks.producer import Producer
from tests.faults.audit import STRANDED_AFTER, CaptureAudit, Settled, audit_captures, capture_jobs, first_call_after, settle
from tests.faults.report import Figures, Recorder
from tests.support.names import path_of
from tests.support.payq_cli import run_payq
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer
from tests.support.sandbox import SandboxProcess
from tests.support.sentinel_group import MASTER, SentinelGroup
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess

TOKEN = new_token()
BATCH = 10
FLOWING_WITHIN = 5.0  # seconds from the promotion to a job enqueued after the kill reaching the API (defaults)
RESUMED_WITHIN = 5.0  # seconds from a replica back in sync to every waiting job's call (the floor at 1)
LOG_LINES_AT_MOST = 50  # both workers together, from the kill to the end (defaults)
IDLE_CPU = 0.05  # of a core, each worker, while it waits below the floor
_QUIET = re.compile(r"^\[[^\]]*: (INFO|DEBUG)/")


# How a delivery that was half-way when the floor was crossed ends, once: its step could not be confirmed and its message
# went back (the claim it wrote meanwhile lapsed, unrenewed, and was given back too). Not the idle worker's talk.
IN_FLIGHT_ENDING = re.compile(r"message requeued: .*PAYQ_REDIS_MIN_REPLICAS|gave back \d+ jobs whose holder's lease lapsed")


def loud_lines(text: str) -> list[str]:
    """The lines a worker prints at its default level: WARNING and above, with their continuation and traceback lines."""
    return [line for line in text.splitlines() if line.strip() and not _QUIET.match(line)]


def cpu_seconds(worker: WorkerProcess) -> float:
    """CPU the worker's processes used so far (user + system), from /proc."""
    ticks = 0
    for pid in [worker.pid, *worker._children()]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / 100  # USER_HZ


@dataclass
class Feed:
    """Captures enqueued a batch at a time through the Python producer, each batch sent again until acknowledged."""

    producer: Producer
    store: str
    acknowledged: dict[str, tuple[Decimal, float]] = field(default_factory=dict)  # trip -> amount, when acknowledged
    refused: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            batch = {f"t{number:03d}-{i}": Decimal(100 + number * BATCH + i).scaleb(-2) for i in range(BATCH)}
            try:
                self.producer.publish(capture_jobs(self.store, batch))
            except PayqError as exc:
                self.refused.append(f"{type(exc).__name__}: {exc}")
                self.stop.wait(0.5)  # a store backend's resend
                continue
            at = time.time()
            self.acknowledged.update({trip: (amount, at) for trip, amount in batch.items()})
            number += 1
            self.stop.wait(0.2)  # a steady load, not a flood


@dataclass
class Stack:
    """The Sentinel group, the sandbox, two workers and ``payq serve``, all on the group's Sentinels with ``env``."""

    group: SentinelGroup
    api: SandboxProcess
    workers: list[WorkerProcess]
    serve: ServeProcess
    env: dict[str, str]

    def settings(self) -> Settings:
        floor = int(self.env.get("PAYQ_REDIS_MIN_REPLICAS", "0"))
        return Settings(redis_url=self.group.url, redis_sentinel_master=MASTER, redis_min_replicas=floor, redis_retry_seconds=3.0)

    def feed(self, store: str) -> tuple[Feed, threading.Thread]:
        feed = Feed(Producer(self.settings()), store)
        thread = threading.Thread(target=feed.run, daemon=True)
        thread.start()
        return feed, thread


@pytest.fixture
def make_stack() -> Iterator[Callable[[dict[str, str]], Stack]]:
    made: list[Stack] = []

    def make(env: dict[str, str]) -> Stack:
        group = SentinelGroup()
        api = SandboxProcess("--auto-register", "--latency-ms", "50", startup_timeout=60)
        settings_env = {"PAYQ_REDIS_SENTINEL_MASTER": MASTER, **env}
        workers = [WorkerProcess(group.url, api.url, env=settings_env, concurrency=8) for _ in range(2)]
        serve = ServeProcess(group.url, env={**settings_env, "PAYQ_INTAKE_TOKENS": json.dumps({digest(TOKEN): ["s-http"]})})
        made.append(Stack(group, api, workers, serve, settings_env))
        return made[-1]

    yield make
    for stack in made:
        stack.serve.stop()
        for worker in stack.workers:
            worker.kill()
            worker.log_path.unlink(missing_ok=True)
        stack.api.stop()
        stack.group.close()


def kill_primary_for_good(stack: Stack, feed: Feed) -> tuple[float, float]:
    """Under load, SIGKILL the primary; wait for the Sentinels to promote the replica. (kill time, promotion time)."""
    wait_for(lambda: len(feed.acknowledged) >= 3 * BATCH and len(stack.api.requests(path_of("capture"))) >= BATCH, timeout=60,
             what="captures enqueued and called")
    old = stack.group.kill_primary()
    killed = time.time()
    stack.group.wait_promoted(old)
    return killed, time.time()


def settle_and_audit(stack: Stack, store: str, amounts: dict[str, Decimal]) -> tuple[Settled, CaptureAudit]:
    """Wait until the captures of ``amounts`` and their reports settled (or cannot), on the primary now; their audit."""
    rdb = stack.group.primary().client()
    settled = settle(rdb, [f"capture:{store}:{t}" for t in amounts], timeout=120, quiet=STRANDED_AFTER)
    return settled, audit_captures(stack.api, rdb, store, amounts)


def figures(audit: CaptureAudit, floor: str, after: str, seconds: float, notes: str) -> Figures:
    """The scenario's line in the fault suite's summary."""
    captures = len({*audit.capture_calls, *audit.lost})
    return Figures(scenario=10, title="failover leaving no replica", jobs=2 * captures,
                   jobs_detail=f"{captures} captures + their reports, 50 ms API, PAYQ_REDIS_MIN_REPLICAS {floor}",
                   faults=f"primary SIGKILLed under load, {after}", lost=len(audit.lost), duplicates=audit.duplicates,
                   notes=notes, seconds=seconds)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_with_the_defaults_a_failover_that_leaves_no_replica_goes_on_degraded_and_quietly(
    make_stack: Callable[[dict[str, str]], Stack], fault_report: Recorder,
) -> None:
    started = time.monotonic()
    stack = make_stack({})
    feed, thread = stack.feed("s-alone")
    logged = [len(w.log()) for w in stack.workers]
    killed, promoted = kill_primary_for_good(stack, feed)
    time.sleep(10)  # the load goes on after the promotion: the scenario, not a wait for a result
    feed.stop.set()
    thread.join(timeout=30)

    amounts = {trip: amount for trip, (amount, _) in feed.acknowledged.items()}
    settled, audit = settle_and_audit(stack, "s-alone", amounts)
    after_kill = [trip for trip, (_, at) in feed.acknowledged.items() if at > killed]
    flowing = min((first_call_after(audit.capture_calls.get(t, []), killed) or float("inf") for t in after_kill), default=float("inf"))
    lines = [line for w, n in zip(stack.workers, logged, strict=True) for line in loud_lines(w.log()[n:])]
    ready = stack.serve.request("GET", "/readyz")
    stats = run_payq(stack.group.url, "stats", env={"PAYQ_REDIS_SENTINEL_MASTER": MASTER}).stdout
    fault_report.add(figures(
        audit, "0 (the default)", "never back (Sentinel promoted the only replica)", time.monotonic() - started,
        f"promoted {promoted - killed:.1f} s after the kill; a job enqueued after it called {flowing - promoted:.1f} s after the"
        f" promotion; {len(feed.refused)} enqueues refused during the failover; {len(lines)} log lines from both workers"
        f" after the kill; /readyz {ready.status_code} {ready.json()}"))

    assert settled.stuck is None and settled.stranded == {}, settled
    assert audit.lost == {}, f"lost {len(audit.lost)}: {dict(list(audit.lost.items())[:5])}"
    assert audit.duplicates == 0, f"called twice: {audit.repeated('capture')} {audit.repeated('feedback')}"
    assert flowing - promoted < FLOWING_WITHIN
    assert len(lines) < LOG_LINES_AT_MOST, "\n".join(lines)
    assert ready.status_code == 200 and ready.json()["degraded"] is True
    assert "DEGRADED" in stats
    assert any("degraded: no Redis replica in sync" in line for line in lines)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_with_the_floor_at_one_payq_refuses_waits_idle_saying_so_once_a_minute_and_resumes_when_a_replica_is_back(
    make_stack: Callable[[dict[str, str]], Stack], fault_report: Recorder,
) -> None:
    started = time.monotonic()
    stack = make_stack({"PAYQ_REDIS_MIN_REPLICAS": "1"})
    feed, thread = stack.feed("s-floor")
    killed, promoted = kill_primary_for_good(stack, feed)
    feed.stop.set()
    thread.join(timeout=30)

    # the workers stop taking work, each saying so once
    entering = "degraded: too few Redis replicas in sync"
    wait_for(lambda: all(entering in w.log() for w in stack.workers), timeout=30, what="both workers to stop taking work")
    cli = run_payq(stack.group.url, "enqueue", "capture", "--store-id", "s-cli", "--trip-id", "c1", "--amount", "3.00",
                   "--currency", "USD", env=stack.env)
    http = stack.serve.request("POST", "/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"},
                               json={"operation": "capture", "storeId": "s-http", "shoppingTripId": "h1",
                                     "amount": {"amount": "3.00", "code": "USD"}})
    ready = stack.serve.request("GET", "/readyz")
    below = {f"b{i}": Decimal("4.00") for i in range(BATCH)}  # refused, yet written: they wait, and run once a replica is back
    with pytest.raises(NotReplicated):
        Producer(stack.settings()).publish(capture_jobs("s-floor", below))
    # idle for a minute and a bit: no work, one line a minute, almost no CPU
    marks = [w.log().index(entering) for w in stack.workers]
    cpu_before = [cpu_seconds(w) for w in stack.workers]
    idle_from = time.monotonic()
    time.sleep(65)  # the scenario: a minute below the floor, to count its log lines and CPU
    idle_cpu = [(cpu_seconds(w) - c) / (time.monotonic() - idle_from) for w, c in zip(stack.workers, cpu_before, strict=True)]
    lines_while_idle = [loud_lines(w.log()[m:])[1:] for w, m in zip(stack.workers, marks, strict=True)]
    calls_before = len(stack.api.requests())

    replica = RedisServer(appendonly=True, extra_args=("--replicaof", "127.0.0.1", str(stack.group.primary().port)))
    stack.group.servers.append(replica)
    stack.group.wait_in_sync()
    back = time.time()
    amounts = {**{trip: amount for trip, (amount, _) in feed.acknowledged.items()}, **below}
    settled, audit = settle_and_audit(stack, "s-floor", amounts)
    waiting = [t for t in amounts if not any(e["time"] < back for e in audit.capture_calls.get(t, []))]
    resumed = max((first_call_after(audit.capture_calls.get(t, []), back) or float("inf") for t in waiting), default=back) - back
    fault_report.add(figures(
        audit, "1", "never back; a new replica attached after a minute and more", time.monotonic() - started,
        f"promoted {promoted - killed:.1f} s after the kill; below the floor: CLI exit {cli.returncode}, HTTP {http.status_code},"
        f" /readyz {ready.status_code}; idle workers used {', '.join(f'{c:.1%}' for c in idle_cpu)} of a core and wrote"
        f" {[len(x) for x in lines_while_idle]} lines in 65 s; {calls_before} calls before, the {len(waiting)} waiting captures"
        f" all called within {resumed:.1f} s of the replica's sync"))

    assert cli.returncode == 75 and "PAYQ_REDIS_MIN_REPLICAS" in cli.stderr
    assert http.status_code == 503 and http.headers["Retry-After"]
    assert ready.status_code == 503
    assert all(c < IDLE_CPU for c in idle_cpu), idle_cpu
    # the reminder, only; besides, once each, the end of a delivery the floor caught half-way (whether the kill lands in one is chance)
    said = [[line for line in x if not IN_FLIGHT_ENDING.search(line)] for x in lines_while_idle]
    assert [len(x) for x in said] == [1, 1], "\n".join(line for x in lines_while_idle for line in x)
    assert all("degraded for" in x[0] for x in said)
    requeued = [job for x in lines_while_idle for line in x for job in re.findall(r"(\S+): message requeued", line)]
    assert len(requeued) == len(set(requeued)), requeued
    assert settled.stuck is None and settled.stranded == {} and audit.lost == {}
    assert audit.duplicates == 0
    assert set(below) <= set(waiting) and resumed < RESUMED_WITHIN
