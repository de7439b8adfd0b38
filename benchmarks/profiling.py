"""Where a payq worker's CPU goes: py-spy samples the thread holding the GIL during a drain.

Each sample goes to the first named cost (in :data:`GROUPS` order) one of its
frames matches, so the costs are exclusive and add up to 100%; :data:`ACROSS`
counts a cross-cutting cost inside them. ``share`` is the fraction of
GIL-holding samples, ``ms_per_job`` that share of the worker's measured CPU
per job.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.drain import run_drain
from benchmarks.stack import Stack
from benchmarks.workers import Fleet, Shape

# (name, frame pattern), in priority order: a sample belongs to the first group with a frame matching its pattern,
# so the groups are exclusive and add up to 100%. Frames look like "JobStore.begin (tasks/store/records.py:150)".
GROUPS: list[tuple[str, str]] = [
    ("payq: HTTP POST to the API (urllib3)", r"^PaymentClient\.(call|prepare|send) \("),
    ("notifications: delivery loop (signed POST to the receiver, read and settle the outbox)", r"^(DeliveryLoop|WebhookClient|Outbox)\.\w+ \("),
    ("payq: Redis calls (BEGIN, settle and report, succeed, defer, pace, dead letters)",
     r"^(JobStore|Pacer|DeadLetterStore)\.\w+ \("),
    ("payq: rest of the task (kwargs validation, the decision, the ending for Celery)", r"^run \(tasks/payments"),
    ("Celery task events (PUBLISH per event)", r"^EventDispatcher\.\w+ \(celery/"),
    ("kombu ack and bookkeeping (in memory: no unacked set in Redis)", r"^QoS\.(ack|reject|append) \("),
    ("kombu receive (BRPOP, decode) and Celery's handling of the message", r"^Channel\._brpop_read \("),
    ("Celery worker thread: tracer, request, pool", r"^(apply_target|_WorkItem\.run) \("),
    ("Celery hub loop: the rest", r"^asynloop \("),
    ("payq housekeeping thread (deferred mover, lease sweep)", r"^Housekeeper\.run \("),
    ("everything else", r"."),
]
# cross-cutting, not exclusive: how much of the above is this one thing
ACROSS: list[tuple[str, str]] = [
    ("across the above: redis.Redis() built per kombu operation", r"^Redis\.__init__ \(.*redis/client"),
    ("across the above: logging", r"^(Logger|Handler|StreamHandler|Formatter)\.\w+ \(.*logging"),
]


def py_spy() -> str | None:
    """The py-spy executable, if installed (``pip install py-spy``)."""
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def run_profile(stack: Stack, shape: Shape, captures: int, latency_ms: float = 0.0, *, duration: float = 10.0,
                tweaks: tuple[str, ...] = (), env: dict[str, str] | None = None, say: Any = print) -> dict[str, Any]:
    """Drain ``captures`` with py-spy on the first worker process (``env``: its settings, e.g. notifications on); the grouped costs."""
    tool = py_spy()
    if tool is None:
        say("  profile: py-spy is not installed (pip install py-spy); skipped")
        return {"skipped": "py-spy not installed"}
    raw = Path(tempfile.mkstemp(prefix="payq-bench-profile-", suffix=".txt")[1])
    done = threading.Event()

    def attach(fleet: Fleet) -> None:
        def record() -> None:
            time.sleep(3.0)  # past start-up, into the drain
            subprocess.run(
                [tool, "record", "--format", "raw", "--output", str(raw), "--rate", "250", "--duration", str(int(duration)),
                 "--pid", str(fleet.procs[0].pid), "--subprocesses", "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=duration + 60, check=False,
            )
            done.set()

        threading.Thread(target=record, name="py-spy", daemon=True).start()

    drain = run_drain(stack, "payq", shape, captures, latency_ms, env=env, tweaks=tweaks, on_start=attach, say=say)
    done.wait(duration + 60)
    groups, total, top = _aggregate(raw)
    raw.unlink(missing_ok=True)
    per_job = drain.worker_cpu_ms_per_job
    costs: list[dict[str, Any]] = [{"cost": name, "share": round(count / total, 3) if total else 0.0,
              "ms_per_job": round(per_job * count / total, 3) if total else 0.0} for name, count in groups]
    result = {"shape": shape.label, "latency_ms": latency_ms, "notifications": bool(env), "samples": total, "worker_cpu_ms_per_job": per_job,
              "drain_rate": drain.rate, "costs": costs, "top_self": top, "tweaks": list(tweaks)}
    say(f"  profile ({total} GIL samples, worker CPU {per_job} ms/job):")
    for name, count in groups:
        share = count / total if total else 0.0
        if name in dict(ACROSS) or share > 0:
            say(f"    {share * 100:5.1f}%  {per_job * share:.3f} ms/job  {name}")
    return result


def _aggregate(raw: Path) -> tuple[list[tuple[str, int]], int, list[dict[str, Any]]]:
    counts: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    compiled = [(name, re.compile(pattern)) for name, pattern in GROUPS]
    across = [(name, re.compile(pattern)) for name, pattern in ACROSS]
    names = [name for name, _ in GROUPS + ACROSS]
    try:
        text = raw.read_text()
    except OSError:
        return [(name, 0) for name in names], 0, []
    for line in text.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        total += samples
        frames = [re.sub(r" \(.*?site-packages/", " (", f) for f in stack.split(";")]
        for name, pattern in compiled:
            if any(pattern.search(f) for f in frames):
                counts[name] += samples
                break
        for name, pattern in across:
            if any(pattern.search(f) for f in frames):
                counts[name] += samples
        leaf[re.sub(r":\d+\)$", ")", frames[-1])] += samples
    top = [{"function": f, "share": round(n / total, 3)} for f, n in leaf.most_common(15)] if total else []
    return [(name, counts[name]) for name in names], total, top
