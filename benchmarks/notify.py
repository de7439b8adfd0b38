"""Scenario 8: what outcome notifications cost the drain, and how soon they land.

With ``PAYQ_NOTIFY_URL`` and ``PAYQ_NOTIFY_SECRET`` set, every payment job that
succeeds (each capture and each report) appends an event to the outbox stream
in the step that records its outcome; each worker process's delivery loop
POSTs it to a receiver. A store's receiver runs on a machine of its own; here
it shares the two cores, so its CPU counts against payq's drain, and it is a
lean one (:mod:`benchmarks.receiver`): an asyncio HTTP/1.1 keep-alive server
that answers 204 at once and records each delivery's raw headers and body.
After each run every recorded delivery is checked as the sandbox's
``/admin/notifications`` checks one (:class:`sandbox.receiver.Inbox`, Standard
Webhooks' verifier), so the figures still prove every notification arrived
once and signed right. Its CPU per notification is reported, beside what
notifications add to the workers' and Redis's.

The drain rate is scenario 1's: payment jobs (N captures + N reports) a
second, from the first payment API call to the last. The ratio on / off says
how much slower payments drain for their notifications (target ≥ 0.9). The
runs go off, on, off: the baseline is the mean of the two runs around the
other, so a drift of the shared machine falls on both sides. Also given: when
the last notification landed, that every one arrived once and signed, and,
at scenario 3's steady 200 jobs/s, the time from an outcome being recorded
(the event's ``timestamp``) to the receiver having it (target p99 < 1 s).
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from statistics import mean
from typing import Any

from benchmarks import publish
from benchmarks.calls import Call
from benchmarks.drain import DrainResult, fleet_pids, quietly, run_drain
from benchmarks.figures import spread, summary_ms, with_spread
from benchmarks.latency import steady_captures
from benchmarks.live import LivePayq
from benchmarks.processes import cpu_seconds
from benchmarks.receiver import ReceiverProc
from benchmarks.report import Row, fmt
from benchmarks.stack import Stack
from benchmarks.workers import Fleet, Shape
from payapi.operations import QUEUES
from tasks.redis import keys
from tasks.store import lanes

STALL_S = 15.0  # the wait for the last notifications ends when the jobs and events left have not fallen for this long
STEADY_RATE = 200.0  # payment jobs a second in the latency run: scenario 3's


def run_notify(stack: Stack, shape: Shape, captures: int, *, tweaks: tuple[str, ...] = (), say: Any = print,
               steady_seconds: float = 10.0, rounds: int = 1) -> dict[str, Any]:
    """Drains of ``captures`` at 0 ms: notifications off, on, off again (``rounds`` times: off, on, off, on, off, ...);
    then outcome → receiver at a steady 200 jobs/s.

    Each on run's ratio is over the mean of the off runs on either side of it;
    the figure is the median ratio, beside their spread.
    """
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with receiving() as (receiver, env):
        def notified() -> DrainResult:
            _reset(receiver)
            return run_drain(stack, "payq", shape, captures, 0.0, env=env, tweaks=tweaks,
                             after_calls=partial(_delivered, stack, receiver, expected=2 * captures,
                                                 receiver_cpu0=cpu_seconds([receiver.pid])), say=say)

        for kind in ("off", *(("on", "off") * rounds)):
            if kind == "off":
                result = quietly(partial(run_drain, stack, "payq", shape, captures, 0.0, tweaks=tweaks, say=say), say)
            else:
                result = quietly(notified, say)
                extra = result.extra
                say(f"    notifications: {extra['notifications']:,} of {extra['notifications_expected']:,} received "
                    f"({extra['notification_duplicates']} twice, {extra['signatures_valid']:,} signed right), the last "
                    f"{extra['last_notification_after_s']:.1f} s after the first call"
                    + (f"; stalled with {extra['jobs_left']:,} jobs or events left" if extra["stalled"] else ""))
            runs[kind].append(result.as_dict())
        _reset(receiver)
        steady = _steady(stack, shape, receiver, env, steady_seconds, tweaks, say)
    off = mean(r["rate"] for r in runs["off"])
    ratios = spread(on_off_ratios(runs))
    on = sorted(r["rate"] for r in runs["on"])[(len(runs["on"]) - 1) // 2]
    figures = {"captures": captures, "payment_jobs": 2 * captures, "shape": shape.label, "rate_off": round(off, 1), "rate_on": on,
               "ratio": round(ratios["median"], 3), "ratio_spread": ratios, "runs": runs, "steady": steady}
    say(f"  notify: payment jobs {off:.0f}/s off, {on:.0f}/s on (ratio {figures['ratio']:.2f}); "
        f"outcome → receiver at {STEADY_RATE:g} jobs/s p50 {steady['outcome_to_receiver']['p50_ms']} ms, "
        f"p99 {steady['outcome_to_receiver']['p99_ms']} ms")
    return figures


def on_off_ratios(runs: dict[str, list[dict[str, Any]]]) -> list[float]:
    """Each on run's rate over the mean of the off runs just before and after it (off, on, off, on, off, ...)."""
    offs = [r["rate"] for r in runs["off"]]
    return [on["rate"] / mean(offs[i:i + 2]) for i, on in enumerate(runs["on"]) if offs[i:i + 2] and mean(offs[i:i + 2])]


@contextmanager
def receiving() -> Iterator[tuple[ReceiverProc, dict[str, str]]]:
    """A receiver (the lean one, its deliveries checked with a fresh secret) and the workers' settings that notify it."""
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    receiver = ReceiverProc(secret)
    try:
        yield receiver, {"PAYQ_NOTIFY_URL": receiver.url + "/hooks/payq", "PAYQ_NOTIFY_SECRET": secret}
    finally:
        receiver.stop()


def _reset(receiver: ReceiverProc) -> None:
    receiver.reset()


def _left(stack: Stack) -> int:
    """Jobs queued, running or deferred, and notifications not yet delivered."""
    pipe = stack.client.pipeline(transaction=False)
    pipe.zcard(keys.LEASES)
    pipe.zcard(keys.DEFERRED)
    pipe.zcard(keys.OUTBOX_PENDING)
    return sum(lanes.depths(stack.client, QUEUES).values()) + sum(int(n) for n in pipe.execute())


def _wait_settled(stack: Stack, alive: Any) -> int:
    """Wait until nothing is left (:func:`_left`) or its number stops falling; what is left."""
    fewest, fewest_at = -1, time.monotonic()
    while True:
        left = _left(stack)
        if left == 0 or not alive():
            return left
        if fewest < 0 or left < fewest:
            fewest, fewest_at = left, time.monotonic()
        elif time.monotonic() - fewest_at > STALL_S:
            return left
        time.sleep(0.1)


def _received(receiver: ReceiverProc) -> list[dict[str, Any]]:
    return receiver.deliveries()


def _delivered(stack: Stack, receiver: ReceiverProc, fleet: Fleet, calls: list[Call], *, expected: int,
               receiver_cpu0: float) -> dict[str, Any]:
    """Wait until every notification is delivered (or their number stops falling), then what the receiver got."""
    cpu0 = cpu_seconds(fleet_pids(fleet))
    left = _wait_settled(stack, fleet.alive)
    tail_cpu = cpu_seconds(fleet_pids(fleet)) - cpu0
    receiver_cpu = cpu_seconds([receiver.pid]) - receiver_cpu0  # before it is asked for what it got
    deliveries = _received(receiver)
    ids = Counter(d["webhookId"] for d in deliveries)
    first_call = min(c.time for c in calls) if calls else 0.0
    last = max((d["receivedAt"] for d in deliveries), default=first_call)
    return {
        "notifications": len(deliveries), "notifications_expected": expected, "notification_duplicates": len(deliveries) - len(ids),
        "signatures_valid": sum(1 for d in deliveries if d["signatureValid"] is True),
        "dead_letters": int(stack.client.hlen(keys.DEAD_LETTERS)),
        "last_notification_after_s": round(last - first_call, 2),
        "all_jobs_rate": round((len(calls) + len(deliveries)) / (last - first_call), 1) if last > first_call else 0.0,
        "tail_worker_cpu_s": round(tail_cpu, 2), "stalled": left > 0, "jobs_left": left,
        "receiver_cpu_ms_per_event": round(receiver_cpu * 1000 / max(len(deliveries), 1), 3),
    }


def _steady(stack: Stack, shape: Shape, receiver: ReceiverProc, env: dict[str, str], seconds: float, tweaks: tuple[str, ...],
            say: Any) -> dict[str, Any]:
    """Captures at a steady 100/s (+ their reports: 200 jobs/s) for ``seconds``; outcome → receiver for each notification."""
    count = int(STEADY_RATE / 2 * seconds)
    with LivePayq(stack, 0.0, shape, env=env, tweaks=tweaks) as live:
        _wait_settled(stack, live.fleet.alive)  # the warm-up's notifications out of the way
        _reset(receiver)
        steady_captures(live, publish.trips(f"n{uuid.uuid4().hex[:6]}", count), STEADY_RATE / 2)
        left = _wait_settled(stack, live.fleet.alive)
    deliveries = _received(receiver)
    delays = [d["receivedAt"] - datetime.fromisoformat(d["event"]["timestamp"]).timestamp() for d in deliveries]
    ids = Counter(d["webhookId"] for d in deliveries)
    lat = summary_ms(delays)
    figures = {"rate_jobs_per_s": STEADY_RATE, "seconds": seconds, "expected": 2 * count, "notifications": len(deliveries),
               "duplicates": len(deliveries) - len(ids), "signatures_valid": sum(1 for d in deliveries if d["signatureValid"] is True),
               "left": left, "outcome_to_receiver": lat}
    say(f"  notify latency at {STEADY_RATE:g} jobs/s: {len(deliveries):,} of {2 * count:,} notifications, outcome → receiver "
        f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms")
    return figures


def rows(figures: dict[str, Any]) -> list[Row]:
    """The report's rows for this scenario."""
    runs = figures["runs"]
    on = next(r for r in runs["on"] if r["rate"] == figures["rate_on"])  # the median on run
    steady = figures.get("steady")
    turns = "off, on, off again" if len(runs["on"]) == 1 else f"off, then on and off in turn {len(runs['on'])} times"
    section = (f"8. Notifications: payq drain at 0 ms, {figures['captures']:,} captures + {figures['captures']:,} reports, "
               f"{figures['shape']}: notifications {turns}; then outcome → receiver at a steady {STEADY_RATE:g} jobs/s")

    def delivered(e: dict[str, Any]) -> str:
        text = f"{e['notifications']:,} / {e['notifications_expected']:,}; {e['notification_duplicates']}; {e['signatures_valid']:,}"
        return text + (f" (stalled, {e['jobs_left']:,} jobs or events left)" if e["stalled"] else "")

    def ok(e: dict[str, Any]) -> bool:
        return bool(e["notifications"] == e["notifications_expected"] and e["notification_duplicates"] == 0
                    and e["signatures_valid"] == e["notifications"])

    def cpu_per_payment_job(r: dict[str, Any]) -> float:
        tail = float(r["extra"].get("tail_worker_cpu_s", 0.0)) * 1000
        return (float(r["worker_cpu_ms_per_job"]) * int(r["calls"]) + tail) / max(int(r["jobs"]), 1)

    e = on["extra"]
    out = [
        Row(section, "payment jobs/s, notifications off (the two runs' mean)",
            f"{fmt(figures['rate_off'], 'jobs/s')} (" + " / ".join(fmt(r["rate"]) for r in runs["off"]) + ")"),
        Row(section, "payment jobs/s, notifications on (each success appends an event to the outbox, delivered signed)",
            fmt(figures["rate_on"], "jobs/s")),
        Row(section, "on / off, payment jobs a second", with_spread(figures.get("ratio_spread") or spread([figures["ratio"]])),
            "≥ 0.95 (issue 31)", figures["ratio"] >= 0.95),
        Row(section, "  notifications received / expected; twice; signed right", delivered(e), "all, once, signed", ok(e)),
        Row(section, "  last notification landed after the first payment call",
            f"{e['last_notification_after_s']:.1f} s ({fmt(e['all_jobs_rate'], 'jobs/s')} all jobs)"),
        Row(section, "worker CPU per payment job while payments drain: off / on",
            " / ".join(f"{mean(r['worker_cpu_ms_per_job'] for r in runs[k]):.2f}" for k in ("off", "on")) + " ms"),
        Row(section, "  on, with every notification delivered (the tail after the last payment call too)", f"{cpu_per_payment_job(on):.2f} ms"),
    ]
    if "receiver_cpu_ms_per_event" in e:
        off_worker = mean(r["worker_cpu_ms_per_job"] for r in runs["off"])
        off_redis = mean(r["redis_cpu_ms_per_job"] for r in runs["off"])
        worker = cpu_per_payment_job(on) - off_worker
        redis_cost = float(on["redis_cpu_ms_per_job"]) - off_redis
        receiver = float(e["receiver_cpu_ms_per_event"])
        out.append(Row(section, "CPU per notification: workers (on − off, tail too) + Redis (on − off) + the receiver = total",
                       f"{worker:.3f} + {redis_cost:.3f} + {receiver:.3f} = {worker + redis_cost + receiver:.3f} ms"))
    if steady:
        lat = steady["outcome_to_receiver"]
        complete = steady["notifications"] == steady["expected"] and steady["duplicates"] == 0 and steady["signatures_valid"] == steady["notifications"]
        out += [
            Row(section, f"outcome → receiver at {STEADY_RATE:g} jobs/s, p50 / p99", f"{fmt(lat['p50_ms'], '', 1)} / {fmt(lat['p99_ms'], 'ms', 1)}",
                "p99 < 1,000 ms", lat["p99_ms"] < 1000),
            Row(section, "  notifications received / expected; twice", f"{steady['notifications']:,} / {steady['expected']:,}; {steady['duplicates']}",
                "all, once", complete),
        ]
    aside = [a for kind in ("off", "on") for r in runs[kind] for a in r["extra"].get("set_aside", [])]
    out.append(Row(section, "others' CPU load on this shared machine meanwhile", f"{figures.get('other_load_cores', 0):.2f} cores"
                   + (f"; {len(aside)} runs set aside and run again (others {max(a['other_load_cores'] for a in aside):.2f} cores at most)"
                      if aside else "")))
    return out
