"""Scenario 4: a 429 storm. M captures queued at once; the capture endpoint answers its first call 429 ``Retry-After: 5``.

What is measured, from the sandbox's log and payq's job records:

- calls to the capture endpoint while the pause lasts, split into those whose
  attempt began before the pause was set (in flight: nothing could stop them)
  and those that began after (the target is 0);
- each deferred capture's next call: how long after its own due time
  (lateness; includes waiting behind the other deferred jobs), how long after
  the pause ended, and whether any came early (never allowed);
- duplicate calls per trip.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from benchmarks import publish
from benchmarks.calls import CAPTURE, FEEDBACK, drain_rate, repeats
from benchmarks.figures import ms, summary_ms
from benchmarks.live import LivePayq
from benchmarks.stack import Stack
from benchmarks.workers import Shape
from payapi.operations import Operation
from tasks.pacing.pacer import Pacer
from tasks.pacing.rules import BETA
from tasks.redis import keys
from tasks.store import lanes

RETRY_AFTER = 5


def run_storm(stack: Stack, shape: Shape, captures: int, latency_ms: float = 0.0, *, tweaks: tuple[str, ...] = (),
              say: Any = print) -> dict[str, Any]:
    """Run the storm; the figures."""
    tag = uuid.uuid4().hex[:6]
    trip_ids = publish.trips(f"st{tag}", captures)
    jobs = publish.payq_captures(trip_ids)
    pause_key = keys.pause("capture")
    with LivePayq(stack, latency_ms, shape, tweaks=tweaks) as live:
        live.log.set_faults({"rules": [{"endpoint": "capture", "sequence": [f"429 Retry-After: {RETRY_AFTER}"]}]})
        publish.payq_publish(live.producer, jobs)
        until, seen_at = _wait_for_pause(stack, pause_key)
        pause_set = until - RETRY_AFTER  # the worker's clock when the 429 came back; the pause is written right after
        # the deferred set just before the pause ends: every deferred capture and its due time
        time.sleep(max(0.0, until - 0.3 - time.time()))
        due = stack.deferred_entries(keys.DEFERRED)
        queued = lanes.depths(stack.client, ["payments.capture", "payments.feedback"])
        queued_captures, queued_reports = queued["payments.capture"], queued["payments.feedback"]
        mover_lag = _mover_lag(stack, timeout=60 + captures / 100)
        complete = live.log.wait_for(2 * captures + 1, timeout=120 + captures / 50, stall=30)
        live.log.settle(quiet=1.0)
        calls = live.log.calls
        during = [c for c in calls if c.path == CAPTURE and pause_set < c.time < until and c.status != 429]
        first_attempts = stack.hget_many([keys.job(f"capture:{publish.STORE}:{c.trip}") for c in during], "first_attempt_at")
        began = [float(b) if b else 0.0 for b in first_attempts]
        lesson = Pacer(stack.client, {}).learned(Operation.CAPTURE)
        learned = round(lesson.accepted * BETA, 1) if lesson is not None else None
    in_flight = sum(1 for b in began if b <= pause_set)
    after = sum(1 for b in began if b > seen_at)
    unclear = len(began) - in_flight - after
    deferred_trips = {job_id.rsplit(":", 1)[-1]: score for job_id, score in due.items() if job_id.startswith("capture:")}
    next_call: dict[str, float] = {}
    for call in calls:
        if call.path == CAPTURE and call.trip in deferred_trips and call.time >= pause_set and call.status != 429:
            next_call.setdefault(call.trip, call.time)
    lateness = [next_call[t] - deferred_trips[t] for t in next_call]
    after_end = [next_call[t] - until for t in next_call]
    early = sum(1 for t in next_call if next_call[t] < deferred_trips[t])
    rate, _ = drain_rate([c for c in calls if c.time >= until])
    extra = repeats(calls, {CAPTURE: 1, FEEDBACK: 1})
    lateness_summary, after_summary = summary_ms(lateness), summary_ms(after_end)
    duplicates = max(0, extra[CAPTURE] - 1) + extra[FEEDBACK]
    result: dict[str, Any] = {
        "captures": captures, "retry_after_s": RETRY_AFTER, "shape": shape.label, "latency_ms": latency_ms, "complete": complete,
        "calls_during_pause": len(during), "in_flight_when_paused": in_flight, "began_after_pause": after,
        "began_while_pause_being_written": unclear,
        "deferred": len(deferred_trips), "early_calls": early,
        "lateness_vs_due": lateness_summary, "after_pause_end": after_summary,
        "first_call_after_pause_ms": ms(min(after_end)) if after_end else None,
        # the longest any due job stayed in the deferred set before the mover put it back on its queue
        "mover_lag_max_ms": ms(mover_lag),
        "drain_rate_after_pause": round(rate, 1),
        # still queued when the pause ended (each capture also brings its report): due jobs wait behind these
        # unless the mover puts them at the head of the queue
        "queued_ahead_at_pause_end": queued_captures * 2 + queued_reports,
        # what the 429 taught the capture endpoint's pace (None: nothing; the storm's first call was refused, with no
        # successes before it to measure): with a pace, deferred jobs leave at it, and lateness is theirs to wait
        "learned_capture_pace": learned,
        # one capture calls twice by design (the 429, then its retry)
        "duplicates": duplicates,
    }
    say(f"  429 storm: {len(during)} calls during the pause ({in_flight} in flight, {after} began after it was set, "
        f"{unclear} while it was written); {len(deferred_trips)} deferred; lateness p50 {lateness_summary['p50_ms']} ms "
        f"p99 {lateness_summary['p99_ms']} ms (mover lag max {ms(mover_lag)} ms, learned capture pace "
        f"{learned if learned is not None else 'none'}); {early} early; {duplicates} duplicates")
    return result


def _mover_lag(stack: Stack, timeout: float) -> float:
    """Sample the oldest deferred entry every 10 ms until the set is empty; the largest overdue age seen, seconds."""
    deadline = time.monotonic() + timeout
    worst = 0.0
    while time.monotonic() < deadline:
        oldest = stack.oldest_score(keys.DEFERRED)
        if oldest is None:
            break
        worst = max(worst, time.time() - oldest)
        time.sleep(0.01)
    return worst


def _wait_for_pause(stack: Stack, key: str, timeout: float = 30.0) -> tuple[float, float]:
    """Poll for the shared pause; (its end, when it was first seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = stack.client.get(key)
        if value is not None:
            return float(str(value)), time.time()
        time.sleep(0.005)
    raise RuntimeError("no endpoint pause appeared after the 429")
