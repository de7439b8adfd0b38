"""Scenario 8: what outcome notifications cost the drain: scenario 1's payq drain at 0 ms with notifications off and on.

With ``PAYQ_NOTIFY_URL`` and ``PAYQ_NOTIFY_SECRET`` set, every payment job that
succeeds (each capture and each report) publishes a ``notify`` job, which the
same workers deliver to a receiver: a second sandbox's ``/admin/notifications``,
started with the secret so it checks every signature as a store backend would.
The receiver runs on the same two cores, so its CPU counts against payq here.

The drain rate is scenario 1's: payment jobs (N captures + N reports) a
second, from the first payment API call to the last. Notifications on, each
payment job makes one more job, delivered meanwhile and after: the ratio
on / off says how much slower payments drain for it (target: ≥ 0.9, i.e.
notifications add < 10%). Also given: when the last notification landed (all
4N jobs' rate), the workers' CPU per payment job with its notification, and
that every notification arrived once, signed.

The runs go off, on, on with a what-if, off: the baseline is the mean of the
two runs around the others, so a drift of the shared machine falls on both
sides. The what-if (:data:`WHAT_IF`, a benchmark tweak, not payq's code) gives
each worker thread a delivery slot: with payq's few slots a process, a burst of
notifications finds them busy, and every delivery without one pauses the
notify endpoint again, so the wait for the last notifications ends when the
number of jobs left stops falling, and says so.
"""

from __future__ import annotations

import base64
import os
import time
from collections import Counter
from statistics import mean
from typing import Any

from benchmarks.calls import Call
from benchmarks.drain import fleet_pids, run_drain
from benchmarks.processes import SandboxProc, cpu_seconds
from benchmarks.report import Row, fmt
from benchmarks.stack import Stack
from benchmarks.workers import Fleet, Shape
from payapi.operations import QUEUES
from tasks import keys

WHAT_IF = ("notify-slots-all",)  # benchmarks/tweaks.py: a delivery slot for every worker thread
STALL_S = 15.0  # the wait for the last notifications ends when the jobs left have not fallen for this long


def run_notify(stack: Stack, shape: Shape, captures: int, *, tweaks: tuple[str, ...] = (), say: Any = print) -> dict[str, Any]:
    """Drains of ``captures`` at 0 ms: notifications off, on, on with :data:`WHAT_IF`, off again; rates and ratios."""
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    receiver = SandboxProc(0.0, notify_secret=secret)
    env = {"PAYQ_NOTIFY_URL": receiver.url + "/admin/notifications", "PAYQ_NOTIFY_SECRET": secret}
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": [], "what_if": []}
    try:
        for kind in ("off", "on", "what_if", "off"):
            if kind == "off":
                result = run_drain(stack, "payq", shape, captures, 0.0, tweaks=tweaks, say=say)
            else:
                receiver.session.post(receiver.url + "/admin/reset", timeout=30).raise_for_status()
                result = run_drain(stack, "payq", shape, captures, 0.0, env=env,
                                   tweaks=tweaks + (WHAT_IF if kind == "what_if" else ()),
                                   after_calls=lambda fleet, calls: _delivered(stack, receiver, fleet, calls, 2 * captures), say=say)
                extra = result.extra
                say(f"    notifications: {extra['notifications']:,} of {extra['notifications_expected']:,} received "
                    f"({extra['notification_duplicates']} twice, {extra['signatures_valid']:,} signed right), the last "
                    f"{extra['last_notification_after_s']:.1f} s after the first call"
                    + (f"; stalled with {extra['jobs_left']:,} jobs left" if extra["stalled"] else ""))
            runs[kind].append(result.as_dict())
    finally:
        receiver.stop()
    off = mean(r["rate"] for r in runs["off"])
    on, what_if = runs["on"][0]["rate"], runs["what_if"][0]["rate"]
    figures = {"captures": captures, "payment_jobs": 2 * captures, "shape": shape.label, "what_if": list(WHAT_IF),
               "rate_off": round(off, 1), "rate_on": on, "rate_what_if": what_if,
               "ratio": round(on / off, 3) if off else 0.0, "ratio_what_if": round(what_if / off, 3) if off else 0.0, "runs": runs}
    say(f"  notify: payment jobs {off:.0f}/s off, {on:.0f}/s on (ratio {figures['ratio']:.2f}), "
        f"{what_if:.0f}/s on with {'+'.join(WHAT_IF)} (ratio {figures['ratio_what_if']:.2f})")
    return figures


def _delivered(stack: Stack, receiver: SandboxProc, fleet: Fleet, calls: list[Call], expected: int) -> dict[str, Any]:
    """Wait until no job is left (the notifications delivered) or their number stops falling, then what the receiver got."""
    cpu0 = cpu_seconds(fleet_pids(fleet))
    fewest, fewest_at = -1, time.monotonic()
    while True:
        pipe = stack.client.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(queue)
        pipe.hlen(keys.UNACKED)
        pipe.zcard(keys.DEFERRED)
        left = sum(int(n) for n in pipe.execute())
        if left == 0 or not fleet.alive():
            break
        if fewest < 0 or left < fewest:
            fewest, fewest_at = left, time.monotonic()
        elif time.monotonic() - fewest_at > STALL_S:
            break
        time.sleep(0.25)
    tail_cpu = cpu_seconds(fleet_pids(fleet)) - cpu0
    answer = receiver.session.get(receiver.url + "/admin/notifications", timeout=120)
    answer.raise_for_status()
    deliveries = answer.json()["notifications"]
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
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    """The report's rows for this scenario."""
    runs = figures["runs"]
    on, what_if = runs["on"][0], runs["what_if"][0]
    section = (f"8. Notifications: payq drain at 0 ms, {figures['captures']:,} captures + {figures['captures']:,} reports, "
               f"{figures['shape']}: notifications off, on, on with {'+'.join(figures['what_if'])}, off again")

    def delivered(r: dict[str, Any]) -> str:
        e = r["extra"]
        text = f"{e['notifications']:,} / {e['notifications_expected']:,}; {e['notification_duplicates']}; {e['signatures_valid']:,}"
        return text + (f" (stalled, {e['jobs_left']:,} jobs left)" if e["stalled"] else "")

    def ok(r: dict[str, Any]) -> bool:
        e = r["extra"]
        return bool(e["notifications"] == e["notifications_expected"] and e["notification_duplicates"] == 0
                    and e["signatures_valid"] == e["notifications"])

    def cpu_per_payment_job(r: dict[str, Any]) -> float:
        tail = float(r["extra"].get("tail_worker_cpu_s", 0.0)) * 1000
        return (float(r["worker_cpu_ms_per_job"]) * int(r["calls"]) + tail) / max(int(r["jobs"]), 1)

    def landed(r: dict[str, Any]) -> str:
        e = r["extra"]
        return f"{e['last_notification_after_s']:.1f} s ({fmt(e['all_jobs_rate'], 'jobs/s')} all jobs)"

    return [
        Row(section, "payment jobs/s, notifications off (the two runs' mean)",
            f"{fmt(figures['rate_off'], 'jobs/s')} (" + " / ".join(fmt(r["rate"]) for r in runs["off"]) + ")"),
        Row(section, "payment jobs/s, notifications on (each payment job also publishes a notify job, delivered signed)",
            fmt(figures["rate_on"], "jobs/s")),
        Row(section, "on / off, payment jobs a second", f"{figures['ratio']:.2f}", "≥ 0.90 (< 10% slower)", figures["ratio"] >= 0.9),
        Row(section, "  notifications received / expected; twice; signed right", delivered(on), "all, once, signed", ok(on)),
        Row(section, "  last notification landed after the first payment call", landed(on)),
        Row(section, f"what-if, on with {'+'.join(figures['what_if'])} (a delivery slot per worker thread): payment jobs/s",
            fmt(figures["rate_what_if"], "jobs/s")),
        Row(section, "  what-if / off", f"{figures['ratio_what_if']:.2f}"),
        Row(section, "  notifications received / expected; twice; signed right", delivered(what_if), "all, once, signed", ok(what_if)),
        Row(section, "  last notification landed after the first payment call", landed(what_if)),
        Row(section, "worker CPU per payment job while payments drain: off / on / what-if",
            " / ".join(f"{mean(r['worker_cpu_ms_per_job'] for r in runs[k]):.2f}" for k in ("off", "on", "what_if")) + " ms"),
        Row(section, "  what-if, with every notification delivered (the tail after the last payment call too)",
            f"{cpu_per_payment_job(what_if):.2f} ms"),
        Row(section, "others' CPU load on this shared machine meanwhile", f"{figures.get('other_load_cores', 0):.2f} cores"),
    ]
