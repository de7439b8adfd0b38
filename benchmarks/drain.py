"""Scenario 1: drain rate. Idle workers, then N captures (and N chained reports); jobs/s from first to last call.

The peers get the same 2N POSTs (each trip's capture body and report body,
payq's exact bytes) queued up front: the floor of "a queue and an HTTP call".
Every run also counts calls per trip per endpoint, so a job run twice shows.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks import bare_celery, bare_dramatiq, publish
from benchmarks.calls import CAPTURE, FEEDBACK, Call, drain_rate, missing, repeats
from benchmarks.processes import cpu_seconds, machine_busy_seconds
from benchmarks.stack import Stack
from benchmarks.workers import Fleet, Shape, start_bare_celery, start_dramatiq, start_payq
from config.settings import Settings
from tasks.producer import Producer


@dataclass
class DrainResult:
    """One drain run's figures."""

    system: str
    shape: str
    latency_ms: float
    captures: int
    jobs: int
    calls: int
    rate: float
    seconds: float
    duplicates: int
    missing: int
    non_200: int
    complete: bool
    worker_cpu_ms_per_job: float
    sandbox_cpu_ms_per_job: float
    redis_cpu_ms_per_job: float
    worker_rss_mib: float
    worker_processes: int
    other_load_cores: float = 0.0  # CPU other people's processes used meanwhile (this machine is shared), in cores
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _fill(stack: Stack, system: str, trip_ids: list[str]) -> None:
    if system == "payq":
        producer = Producer(Settings(redis_url=stack.redis_url))
        publish.payq_publish(producer, publish.payq_captures(trip_ids))
        return
    settled_at = int(time.time())
    posts = [post for trip in trip_ids for post in publish.api_bodies(trip, settled_at)]
    if system == "dramatiq":
        publish.dramatiq_publish(stack.client, bare_dramatiq.QUEUE, "post", posts)
    else:
        publish.celery_publish(stack.client, bare_celery.TASK, bare_celery.QUEUE, posts)


def _start(stack: Stack, system: str, shape: Shape, api_url: str, env: dict[str, str] | None, tweaks: tuple[str, ...]) -> Fleet:
    if system == "payq":
        return start_payq(shape, stack.redis_url, api_url, env=env, tweaks=tweaks)
    if system == "dramatiq":
        return start_dramatiq(shape, stack.redis_url, api_url)
    return start_bare_celery(shape, stack.redis_url, api_url, payq_config=system == "bare-celery+payq-config", tweaks=tweaks)


def run_drain(
    stack: Stack, system: str, shape: Shape, captures: int, latency_ms: float, *,
    env: dict[str, str] | None = None, tweaks: tuple[str, ...] = (), timeout: float | None = None,
    on_start: Callable[[Fleet], None] | None = None, after_calls: Callable[[Fleet, list[Call]], dict[str, Any]] | None = None,
    say: Any = print,
) -> DrainResult:
    """Start ``system``'s workers, wait until each consumes, queue ``captures`` trips' work, wait for every call; the figures.

    ``after_calls``, if given, runs once every call has arrived, before the
    workers stop (the figures above are taken already); what it returns goes in ``extra``.
    """
    sandbox, log = stack.fresh(latency_ms)
    trip_ids = publish.trips(f"d{uuid.uuid4().hex[:6]}", captures)
    expected = 2 * captures
    fleet = _start(stack, system, shape, sandbox.url, env, tweaks)
    others = [sandbox.pid, stack.redis.pid]
    try:
        ready_s = fleet.wait_ready()
        if on_start is not None:
            on_start(fleet)
        # CPU from here on: worker start-up (imports, forks) is not the drain
        state: dict[str, float] = {
            "cpu0": cpu_seconds(fleet_pids(fleet)), "sb0": cpu_seconds([others[0]]), "rd0": stack.redis_cpu_seconds(),
            "me0": cpu_seconds([os.getpid()]), "busy0": machine_busy_seconds(), "t0": time.monotonic(),
        }
        # idle, warm workers; then the whole burst as fast as each system's own client can write it
        _fill(stack, system, trip_ids)
    except BaseException:
        fleet.stop(timeout=2)
        raise

    def progress(seen: int) -> None:
        if seen and "rss" in state:
            state["rss"] = max(state["rss"], fleet.rss_kib())
        elif seen:
            state["rss"] = fleet.rss_kib()
        if not fleet.alive():
            raise RuntimeError(f"{system} workers exited:\n{fleet.output()}")

    limit = timeout if timeout is not None else 120 + expected / 100
    try:
        complete = log.wait_for(expected, limit, progress=progress)
        cpu1 = cpu_seconds(fleet_pids(fleet))
        sb1, rd1 = cpu_seconds([others[0]]), stack.redis_cpu_seconds()
        me1, busy1, t1 = cpu_seconds([os.getpid()]), machine_busy_seconds(), time.monotonic()
        log.settle(quiet=1.5)
        processes = fleet.process_count()
        after = after_calls(fleet, log.calls) if after_calls is not None else {}
    except BaseException:
        fleet.stop(timeout=2)
        raise
    fleet.stop()
    calls = log.calls
    rate, span = drain_rate(calls)
    extra = repeats(calls, {CAPTURE: 1, FEEDBACK: 1})
    lost = missing(calls, CAPTURE, set(trip_ids)) + missing(calls, FEEDBACK, set(trip_ids))
    jobs = max(len(calls), 1)
    result = DrainResult(
        system=system, shape=shape.label, latency_ms=latency_ms, captures=captures, jobs=expected, calls=len(calls),
        rate=round(rate, 1), seconds=round(span, 2), duplicates=sum(extra.values()), missing=lost,
        non_200=sum(1 for c in calls if c.status != 200), complete=complete,
        worker_cpu_ms_per_job=round((cpu1 - state["cpu0"]) * 1000 / jobs, 3),
        sandbox_cpu_ms_per_job=round((sb1 - state["sb0"]) * 1000 / jobs, 3),
        redis_cpu_ms_per_job=round((rd1 - state["rd0"]) * 1000 / jobs, 3),
        worker_rss_mib=round(state.get("rss", 0) / 1024, 1), worker_processes=processes,
        extra={"ready_s": round(ready_s, 1), **({"tweaks": list(tweaks)} if tweaks else {}), **after},
    )
    if t1 > state["t0"]:
        ours = (cpu1 - state["cpu0"]) + (sb1 - state["sb0"]) + (rd1 - state["rd0"]) + (me1 - state["me0"])
        result.other_load_cores = round(max(0.0, (busy1 - state["busy0"]) - ours) / (t1 - state["t0"]), 2)
    label = system + ("+" + "+".join(tweaks) if tweaks else "")
    say(f"  drain {label:<10} {shape.label:<16} {latency_ms:>4g} ms: {result.rate:>7.1f} jobs/s over {result.seconds:.1f}s"
        f" ({result.calls}/{expected} calls, {result.duplicates} duplicates, worker CPU {result.worker_cpu_ms_per_job} ms/job,"
        f" others {result.other_load_cores} cores)")
    return result


# Cores other people's processes may use during a drain before it is set aside and run again: a quick
# drain lasts seconds, and one that shared the machine with 0.4–0.9 cores of someone's tests drained
# 40% slower (a quick run's rounds then spread by ±39%, against ±5% on an idle machine).
OTHERS_LIMIT = 0.1
TRIES = 3  # runs of one drain at most; the last one stands whatever others used meanwhile


def quietly(drain: Callable[[], DrainResult], say: Any = print, tries: int = TRIES) -> DrainResult:
    """``drain()``, run again while others used more than :data:`OTHERS_LIMIT` cores meanwhile (``tries`` runs at most).

    The result kept names what the runs set aside saw (``extra["set_aside"]``:
    their rates and others' cores), so the report can say how busy the machine was.
    """
    set_aside: list[dict[str, float]] = []
    while True:
        result = drain()
        if result.other_load_cores <= OTHERS_LIMIT or len(set_aside) + 1 >= tries:
            if set_aside:
                result.extra["set_aside"] = set_aside
            return result
        set_aside.append({"rate": result.rate, "other_load_cores": result.other_load_cores})
        say(f"    others used {result.other_load_cores:.2f} cores meanwhile (more than {OTHERS_LIMIT:g}): set aside, run again")


def fleet_pids(fleet: Fleet) -> list[int]:
    """Every process of the fleet: main processes and their pool children."""
    return [pid for proc in fleet.procs for pid in proc.pids()]
