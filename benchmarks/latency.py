"""Scenario 3: end-to-end latency, enqueue → the API receiving the call, at a steady rate.

One producer thread enqueues captures with single ``enqueue`` calls on a fixed
schedule; each capture's report is a second job (enqueued by the worker when
the capture settles). ``rate`` counts both, so ``rate / 2`` captures a second.
A capture's latency is its call's arrival minus the moment ``enqueue`` was
called; a report's is its call's arrival minus ``enqueued_at`` in its job record.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from benchmarks import publish
from benchmarks.calls import CAPTURE, FEEDBACK
from benchmarks.figures import summary_ms
from benchmarks.live import LivePayq
from benchmarks.stack import Stack
from benchmarks.workers import Shape
from tasks.redis import keys


def run_latency(stack: Stack, shape: Shape, rate: float, seconds: float, latency_ms: float = 0.0, *, tweaks: tuple[str, ...] = (),
                say: Any = print) -> dict[str, Any]:
    """Enqueue ``rate / 2`` captures a second for ``seconds``; latency figures for captures, reports and both."""
    captures_per_s = rate / 2
    count = int(captures_per_s * seconds)
    tag = uuid.uuid4().hex[:6]
    trip_ids = publish.trips(f"l{tag}", count)
    with LivePayq(stack, latency_ms, shape, tweaks=tweaks) as live:
        enqueued, sent_s, behind = steady_captures(live, trip_ids, captures_per_s)
        complete = live.log.wait_for(2 * count, timeout=60 + seconds, stall=30)
        calls = live.log.calls
        trips_seen = [c.trip for c in calls if c.path == CAPTURE]
        settled_at = stack.hget_many([keys.job(f"capture:{publish.STORE}:{t}") for t in trips_seen], "settled_at")
        settled = dict(zip(trips_seen, settled_at, strict=True))
        reported = [c.trip for c in calls if c.path == FEEDBACK]
        report_at = stack.hget_many([keys.job(f"feedback:{publish.STORE}:{t}:{settled.get(t)}") for t in reported], "enqueued_at")
        report_enqueued = dict(zip(reported, report_at, strict=True))
    capture_lat = [c.time - enqueued[c.trip] for c in calls if c.path == CAPTURE and c.trip in enqueued]
    report_lat = [c.time - float(at) for c in calls if c.path == FEEDBACK and (at := report_enqueued.get(c.trip))]
    both = summary_ms(capture_lat + report_lat)
    capture_summary, report_summary = summary_ms(capture_lat), summary_ms(report_lat)
    result: dict[str, Any] = {
        "rate_jobs_per_s": rate, "captures": count, "seconds": seconds, "complete": complete,
        "achieved_enqueue_rate": round(count / sent_s, 1), "producer_fell_behind_ms": round(behind * 1000, 1),
        "capture": capture_summary, "report": report_summary, "all": both,
        "shape": shape.label, "latency_ms": latency_ms,
    }
    say(f"  latency at {rate:g} jobs/s: p50 {both['p50_ms']} ms, p99 {both['p99_ms']} ms "
        f"(captures p99 {capture_summary['p99_ms']} ms, reports p99 {report_summary['p99_ms']} ms)")
    return result


def steady_captures(live: LivePayq, trip_ids: list[str], captures_per_s: float) -> tuple[dict[str, float], float, float]:
    """Enqueue a capture for each trip on a fixed schedule, one ``enqueue`` call each.

    Returns when each was enqueued (trip -> epoch), how long it took, and how far the producer fell behind at most (seconds).
    """
    enqueued: dict[str, float] = {}
    start = time.perf_counter()
    behind = 0.0
    for index, trip in enumerate(trip_ids):
        due = start + index / captures_per_s
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        else:
            behind = max(behind, -wait)
        enqueued[trip] = time.time()
        live.producer.enqueue("capture", publish.capture_fields(trip))
    return enqueued, time.perf_counter() - start, behind
