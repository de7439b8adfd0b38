"""Scenario 11: what a SIGKILLed worker's messages cost in time, those it had begun and those it had fetched and not begun.

A victim worker (threads 2, ``--prefetch-multiplier 4``) takes 8 captures
off the capture queue: 2 begun (on the wire, the API answers after 2 s),
6 waiting in its hands for a thread; behind
them comes a backlog the victim's death leaves to a new worker. A survivor
takes only reports and has beaten for a lease, so it may judge the dead one:
its housekeeping gives back what the victim held. Figures: seconds from the
kill to the next call of the begun captures and of the unbegun ones, and to
the backlog's last capture. With ``BENCH_PAYQ_TREE`` set to another checkout
the workers are that checkout's: before and after in one sitting.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any

from benchmarks import publish
from benchmarks.calls import CAPTURE as CAPTURES_PATH
from benchmarks.report import Row, fmt
from benchmarks.stack import Stack
from benchmarks.workers import PAYQ_TREE, Fleet, Shape, start_payq
from config.settings import Settings
from payapi.operations import OPERATIONS, Operation
from tasks.producer import Producer

LATENCY_MS = 2000.0  # long enough that the begun captures are still on the wire when the victim is killed
HELD = 8  # 2 threads x prefetch 4
BACKLOG = 600  # captures behind them: 40 s of the new worker's 32 threads at 2 s, longer than any sweep of the old kind waits
GIVE_UP_AFTER = 180.0  # seconds after the kill a held capture still not called counts as not back
LEASE = Settings.model_fields["lease_seconds"].default
CAPTURES, REPORTS = OPERATIONS[Operation.CAPTURE].queue, OPERATIONS[Operation.FEEDBACK].queue


def run_held(stack: Stack, *, say: Any = print) -> dict[str, Any]:
    """Kill a worker holding begun and unbegun captures in front of a backlog; when each came back."""
    sandbox, log = stack.fresh(LATENCY_MS)
    tag = uuid.uuid4().hex[:4]
    producer = Producer(Settings(redis_url=stack.redis_url))
    fleets: list[Fleet] = []
    try:
        survivor = _start(fleets, stack, sandbox.url, Shape("threads", 8), (REPORTS,))
        time.sleep(LEASE + 2)  # the survivor beats steadily for a lease before it may judge another worker: the scenario
        victim = _start(fleets, stack, sandbox.url, Shape("threads", 2), (CAPTURES,), ("--prefetch-multiplier", "4"))
        held = publish.trips(f"h{tag}", HELD)
        publish.payq_publish(producer, publish.payq_captures(held))
        log.wait_for(2, 30, paths=(CAPTURES_PATH,), interval=0.05)
        publish.payq_publish(producer, publish.payq_captures(publish.trips(f"b{tag}", BACKLOG)))
        for proc in victim.procs:
            proc.send(signal.SIGKILL)
        killed = time.time()
        log.poll()
        begun = {c.trip for c in log.on(CAPTURES_PATH) if c.status is None}  # on the wire at the kill
        done_before = {c.trip for c in log.on(CAPTURES_PATH)} - begun
        _start(fleets, stack, sandbox.url, Shape("threads", 32), (CAPTURES,))
        deadline = time.monotonic() + GIVE_UP_AFTER
        while time.monotonic() < deadline and survivor.alive() and not _all_called_after(log, set(held) - done_before, killed):
            time.sleep(0.5)  # poll interval, bounded by the deadline
        log.wait_for(BACKLOG + HELD + len(begun), max(0.0, deadline - time.monotonic()), paths=(CAPTURES_PATH,))
    finally:
        for fleet in fleets:
            fleet.stop(timeout=5)
    again = {trip: _first_after(log, trip, killed) for trip in set(held) - done_before}
    backlog_last = max((c.time for c in log.on(CAPTURES_PATH) if c.trip.startswith(f"b{tag}")), default=None)
    unbegun = set(held) - done_before - begun
    figures = {
        "tree": os.environ.get(PAYQ_TREE) or "this", "latency_ms": LATENCY_MS, "backlog": BACKLOG, "begun": len(begun),
        "unbegun": len(unbegun), "done_before": len(done_before),
        "begun_back_s": _latest(again, begun, killed), "unbegun_back_s": _latest(again, unbegun, killed),
        "backlog_done_s": round(backlog_last - killed, 1) if backlog_last else None,
        "not_back": sorted(trip for trip, at in again.items() if at is None),
    }
    say(f"  held ({figures['tree']}): begun {figures['begun']} back after {figures['begun_back_s']} s, unbegun {figures['unbegun']}"
        f" back after {figures['unbegun_back_s']} s; backlog of {BACKLOG} done after {figures['backlog_done_s']} s")
    return figures


def _start(fleets: list[Fleet], stack: Stack, api_url: str, shape: Shape, queues: tuple[str, ...], options: tuple[str, ...] = ()) -> Fleet:
    fleet = start_payq(shape, stack.redis_url, api_url, queues=queues, options=options)
    fleets.append(fleet)
    fleet.wait_ready()
    return fleet


def _first_after(log: Any, trip: str, moment: float) -> float | None:
    times = [c.time for c in log.on(CAPTURES_PATH) if c.trip == trip and c.time > moment]
    return min(times) if times else None


def _all_called_after(log: Any, trips: set[str], moment: float) -> bool:
    log.poll()
    return trips <= {c.trip for c in log.on(CAPTURES_PATH) if c.time > moment}


def _latest(again: dict[str, float | None], trips: set[str], killed: float) -> float | None:
    times = [again[t] for t in trips]
    if not times or any(t is None for t in times):
        return None
    return round(max(t for t in times if t is not None) - killed, 1)


def rows(figures: dict[str, Any]) -> list[Row]:
    """The report's rows for this scenario (one run per tree)."""
    out: list[Row] = []
    for run in figures["runs"]:
        section = (f"11. A SIGKILLed worker's messages: {run['begun']} begun, {run['unbegun']} fetched and not begun, in front of"
                   f" a backlog of {run['backlog']:,} ({run['latency_ms']:g} ms API)")
        label = "this tree" if run["tree"] == "this" else run["tree"]
        out += [
            Row(section, f"{label}: kill → begun ones called again", fmt(run["begun_back_s"], "s", 1), "< 12 s (issue 29)",
                run["begun_back_s"] is not None and run["begun_back_s"] < 12),
            Row(section, f"{label}: kill → unbegun ones called", fmt(run["unbegun_back_s"], "s", 1), "< 12 s (issue 29)",
                run["unbegun_back_s"] is not None and run["unbegun_back_s"] < 12),
            Row(section, f"{label}: kill → the backlog's last capture", fmt(run["backlog_done_s"], "s", 1)),
        ]
    return out
