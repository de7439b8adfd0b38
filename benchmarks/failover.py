"""Scenario 9: Redis on Sentinel. What ``PAYQ_REDIS_MIN_REPLICAS`` costs, and a failover under load.

A primary, a replica and three Sentinels (``down-after-milliseconds`` 5000, as
docker-compose's ``ha`` profile), payq's workers and producer given only the
Sentinels. First the cost of ``WAIT``: single enqueues, a bulk publish and a
drain (captures + their reports, 20 ms API), each with ``PAYQ_REDIS_MIN_REPLICAS``
0 and 1 in the same run. Then, per setting, a failover: a producer enqueues one
capture at a time, sending each again until it is acknowledged (as a store
backend does), the primary is SIGKILLed, and once the Sentinels have promoted
the replica the old primary is started again as a replica of the new one (as
an orchestrator would). Figures: seconds from the kill to the promotion, to the
first acknowledged enqueue and to the first API call of a job enqueued after
the kill; acknowledged jobs with no capture or report (lost), and API calls
beyond one per job (twice).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from benchmarks import publish
from benchmarks.calls import CAPTURE, FEEDBACK, CallLog, drain_rate
from benchmarks.processes import Managed, SandboxProc, free_port
from benchmarks.report import Row, fmt
from benchmarks.workers import Fleet, Shape, start_payq
from config.celery import STEPS_PATIENCE
from config.settings import Settings
from payapi.errors import PayqError
from tasks.producer import Producer

MASTER = "payq"
DOWN_AFTER_MS = 5000
LATENCY_MS = 20.0


class Node(Managed):
    """A ``redis-server`` (``--replicaof`` for a replica) or a Sentinel on a free port, in its own directory."""

    def __init__(self, name: str, extra: list[str], *, sentinel_of: int | None = None, port: int | None = None,
                 directory: Path | None = None) -> None:
        self.port = port or free_port()
        self.dir = directory or Path(tempfile.mkdtemp(prefix=f"payq-bench-{name}-"))
        if sentinel_of is not None:
            conf = self.dir / "sentinel.conf"
            conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nsentinel monitor {MASTER} 127.0.0.1 {sentinel_of} 2\n"
                            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\nsentinel failover-timeout {MASTER} 10000\n")
            args = ["redis-server", str(conf), "--sentinel"]
        else:
            args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
                    "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", *extra]
        self.node_name, self.extra = name, extra
        super().__init__(name, args)
        deadline = time.monotonic() + 10
        while not self._answers():
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {self.text()}")
            time.sleep(0.05)

    def client(self) -> redis.Redis:
        """A decoding client."""
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_connect_timeout=1, socket_timeout=30)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False


def command(node: Node, *args: Any) -> Any:
    """One command on ``node`` (Sentinel's and WAIT have no typed method in redis-py)."""
    return node.client().execute_command(*args)  # type: ignore[no-untyped-call]


class Group:
    """Two data nodes and three Sentinels."""

    def __init__(self) -> None:
        first = Node("redis-a", [])
        self.nodes = [first, Node("redis-b", ["--replicaof", "127.0.0.1", str(first.port)])]
        self.sentinels = [Node(f"sentinel-{i}", [], sentinel_of=first.port) for i in range(3)]
        self.url = ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels)
        self._lost: list[Node] = []  # primaries killed for good (their directories removed at the end)
        self.env = {"PAYQ_REDIS_SENTINEL_MASTER": MASTER}
        self._wait(lambda: all(int(dict(command(s, "SENTINEL", "MASTER", MASTER))["num-other-sentinels"]) == 2
                               for s in self.sentinels) and self.in_sync(), 30, "the Sentinels to meet")

    def primary_port(self) -> int:
        """The primary's port, as the first Sentinel names it."""
        return int(command(self.sentinels[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)[1])

    def primary(self) -> Node:
        """The node the Sentinels name as primary."""
        port = self.primary_port()
        return next(n for n in self.nodes if n.port == port)

    def in_sync(self) -> bool:
        """The primary has a replica online (every Sentinel agreeing who is primary)."""
        try:
            if len({int(command(s, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)[1]) for s in self.sentinels}) != 1:
                return False
            return int(command(self.primary(), "WAIT", 1, 200)) >= 1
        except (redis.RedisError, StopIteration):
            return False

    def settings(self, min_replicas: int) -> Settings:
        """Settings for an in-process producer on the Sentinels."""
        return Settings(redis_url=self.url, redis_sentinel_master=MASTER, redis_min_replicas=min_replicas)

    def fail_over(self, *, back: bool) -> dict[str, float]:
        """SIGKILL the primary, wait for the promotion, and (``back``) start it again as a replica; seconds from the kill to each."""
        old = self.primary()
        old.stop(signal.SIGKILL, timeout=5)
        killed = time.time()  # once it is gone: nothing acknowledged after this came from it
        self._wait(lambda: self.primary_port() != old.port, 60, "the promotion")
        promoted = time.time()
        self.nodes.remove(old)
        times = {"killed_at": killed, "promoted_s": round(promoted - killed, 2)}
        if back:
            self.nodes.append(Node(old.node_name, ["--replicaof", "127.0.0.1", str(self.primary().port)], port=old.port, directory=old.dir))
            self._wait(self.in_sync, 60, "the old primary back as a replica")
            times["replica_back_s"] = round(time.time() - killed, 2)
        else:
            self._lost.append(old)
        return times

    def attach_replica(self) -> None:
        """A new, empty replica of the primary (after a host was lost for good), waited for until in sync."""
        if len(self.nodes) < 2:
            self.nodes.append(Node(f"redis-{len(self.nodes) + len(self._lost)}", ["--replicaof", "127.0.0.1", str(self.primary_port())]))
            self._wait(self.in_sync, 60, "a new replica in sync")

    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop every node and remove their directories."""
        for node in [*self.sentinels, *self.nodes, *self._lost]:
            node.stop(signal.SIGKILL, timeout=5)
            shutil.rmtree(node.dir, ignore_errors=True)


@dataclass
class Enqueuer:
    """One capture at a time through :class:`Producer`, each sent again until acknowledged; what was acknowledged, and when."""

    producer: Producer
    tag: str
    acknowledged: dict[str, float] = field(default_factory=dict)  # trip -> when its enqueue was acknowledged
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Enqueue until told to stop."""
        number = 0
        while not self.stop.is_set():
            trip = f"{self.tag}-{number}"
            try:
                self.producer.enqueue("capture", publish.capture_fields(trip))
            except PayqError:
                self.refused += 1
                time.sleep(0.1)  # a store backend's resend
                continue
            self.acknowledged[trip] = time.time()
            number += 1
            time.sleep(0.005)  # ~150 enqueues a second: a steady load, not a flood


def run_failover(shape: Shape, *, say: Any = print) -> dict[str, Any]:
    """The cost of ``WAIT`` (enqueue and drain, 0 and 1 replicas) and one failover under load per setting."""
    group = Group()
    sandbox = SandboxProc(LATENCY_MS)
    log = CallLog(sandbox.url)
    figures: dict[str, Any] = {"down_after_ms": DOWN_AFTER_MS, "latency_ms": LATENCY_MS, "shape": shape.label, "runs": {}}
    try:
        for wanted in (0, 1):
            group.attach_replica()
            run: dict[str, Any] = {"enqueue": _enqueue_rates(group, wanted)}
            run["drain"] = _drain(group, sandbox, log, shape, wanted, 2000)
            run["failover"] = _failover(group, sandbox, log, shape, wanted, back=wanted > 0)
            figures["runs"][str(wanted)] = run
            say(f"  failover, PAYQ_REDIS_MIN_REPLICAS={wanted}: enqueue {run['enqueue']['single_rate']:.0f}/s single, "
                f"{run['enqueue']['bulk_rate']:.0f}/s bulk; drain {run['drain']['rate']:.0f} jobs/s; failover: promoted after "
                f"{run['failover']['promoted_s']} s, enqueues acknowledged again after {run['failover']['acknowledged_again_s']} s, "
                f"calls again after {run['failover']['flowing_again_s']} s; {run['failover']['lost']} lost, {run['failover']['twice']} twice")
    finally:
        log.close()
        sandbox.stop()
        group.close()
    return figures


def _enqueue_rates(group: Group, wanted: int, single: int = 1000, bulk: int = 10_000) -> dict[str, float]:
    producer = Producer(group.settings(wanted))
    group.primary().client().flushall()
    started = time.perf_counter()
    for trip in publish.trips(f"e{uuid.uuid4().hex[:4]}", single):
        producer.enqueue("capture", publish.capture_fields(trip))
    single_rate = single / (time.perf_counter() - started)
    jobs = publish.payq_captures(publish.trips(f"b{uuid.uuid4().hex[:4]}", bulk))
    started = time.perf_counter()
    publish.payq_publish(producer, jobs)
    return {"single_rate": round(single_rate, 1), "bulk_rate": round(bulk / (time.perf_counter() - started), 1)}


def _start(group: Group, sandbox: SandboxProc, shape: Shape, wanted: int) -> Fleet:
    fleet = start_payq(shape, group.url, sandbox.url, env={**group.env, "PAYQ_REDIS_MIN_REPLICAS": str(wanted)})
    fleet.redis_url = f"redis://127.0.0.1:{group.primary_port()}/0"  # the readiness ping goes to the primary itself
    fleet.wait_ready()
    return fleet


def _drain(group: Group, sandbox: SandboxProc, log: CallLog, shape: Shape, wanted: int, captures: int) -> dict[str, Any]:
    group.primary().client().flushall()
    log.reset()
    fleet = _start(group, sandbox, shape, wanted)
    try:
        publish.payq_publish(Producer(group.settings(0)), publish.payq_captures(publish.trips(f"d{uuid.uuid4().hex[:4]}", captures)))
        log.wait_for(2 * captures, 120 + captures / 50)
    finally:
        fleet.stop()
    rate, span = drain_rate(log.calls)
    return {"captures": captures, "calls": len(log.calls), "rate": round(rate, 1), "seconds": round(span, 2)}


def _failover(group: Group, sandbox: SandboxProc, log: CallLog, shape: Shape, wanted: int, *, back: bool) -> dict[str, Any]:
    group.primary().client().flushall()
    log.reset()
    fleet = _start(group, sandbox, shape, wanted)
    enqueuer = Enqueuer(Producer(group.settings(wanted)), f"f{wanted}{uuid.uuid4().hex[:4]}")
    thread = threading.Thread(target=enqueuer.run, daemon=True)
    try:
        thread.start()
        time.sleep(5)  # steady load before the kill (the scenario, not a wait for a result)
        times = group.fail_over(back=back)
        killed = times.pop("killed_at")
        time.sleep(5)  # and after it
        enqueuer.stop.set()
        thread.join(timeout=30)
        acknowledged = dict(enqueuer.acknowledged)
        # a job claimed on the old primary alone waits for its lease; a worker's fetched messages, for it to be seen dead
        deadline = time.monotonic() + STEPS_PATIENCE + 20
        while _unfinished(log, acknowledged) and time.monotonic() < deadline and fleet.alive():
            time.sleep(0.5)
        log.settle(quiet=2.0)
    finally:
        fleet.stop()
    calls = log.calls
    captured = Counter(c.trip for c in calls if c.path == CAPTURE and c.status == 200)
    reported = Counter(c.trip for c in calls if c.path == FEEDBACK and c.status == 200)
    last_done = max((c.time for c in calls if c.path == FEEDBACK), default=killed)
    after = [at for at in acknowledged.values() if at > killed]
    first_ack = min(after, default=None)
    new_trips = {trip for trip, at in acknowledged.items() if at > killed}
    first_call = min((c.time for c in calls if c.trip in new_trips), default=None)
    return {
        **times, "old_primary_back": back, "acknowledged": len(acknowledged), "refused": enqueuer.refused,
        "acknowledged_again_s": round(first_ack - killed, 2) if first_ack else None,
        "flowing_again_s": round(first_call - killed, 2) if first_call else None,
        "last_job_done_s": round(last_done - killed, 1),
        "lost": sum(1 for trip in acknowledged if not captured[trip] or not reported[trip]),
        "twice": sum(n - 1 for path in (CAPTURE, FEEDBACK) for n in Counter(c.trip for c in calls if c.path == path).values() if n > 1),
    }


def _unfinished(log: CallLog, acknowledged: dict[str, float]) -> int:
    log.poll()
    done = {c.trip for c in log.calls if c.path == FEEDBACK and c.status == 200}
    return len(acknowledged.keys() - done)


def rows(figures: dict[str, Any]) -> list[Row]:
    """The report's rows for this scenario."""
    section = (f"9. Redis on Sentinel (down-after {figures['down_after_ms']} ms): the cost of WAIT, and the primary SIGKILLed "
               f"under load ({figures['latency_ms']:g} ms API, payq {figures['shape']})")
    out: list[Row] = []
    for wanted, run in figures["runs"].items():
        f = run["failover"]
        label = f"PAYQ_REDIS_MIN_REPLICAS={wanted}" + ("" if f.get("old_primary_back", True) else ", the old primary never back")
        out += [
            Row(section, f"{label}: enqueue single / bulk", f"{fmt(run['enqueue']['single_rate'], '')} / "
                f"{fmt(run['enqueue']['bulk_rate'], 'jobs/s')}"),
            Row(section, f"{label}: drain ({run['drain']['captures']:,} captures + reports)", fmt(run["drain"]["rate"], "jobs/s")),
            Row(section, f"{label}: kill → promoted / enqueues acknowledged again / API calls again / last job done",
                f"{f['promoted_s']} / {f['acknowledged_again_s']} / {f['flowing_again_s']} / {f['last_job_done_s']} s"),
            Row(section, f"{label}: acknowledged jobs lost ({f['acknowledged']:,} acknowledged, {f['refused']} refusals)",
                fmt(f["lost"]), "0", f["lost"] == 0),
            Row(section, f"{label}: API calls made twice", fmt(f["twice"]), "0", f["twice"] == 0),
        ]
    return out
