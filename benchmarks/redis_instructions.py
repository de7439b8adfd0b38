"""Scenario 13: Redis's instructions per job, counted by callgrind: a figure the machine's load does not move.

Redis's CPU per job (scenario 1's, from ``INFO cpu``) swings with whatever
else the machine runs: on a busy 2-core machine three quick rounds spread by
±14%, and a change of a tenth hid in it (issue 31). Instructions do not: this
scenario runs its own ``redis-server`` under valgrind's callgrind, collecting
only from the workers being ready to the last call (``callgrind_control``),
and reads the instructions Redis executed per job, for bare Celery and payq
with notifications off and on, the same drains at 0 ms as scenario 1. Two runs
of the same tree agree within about 2%, busy machine or not.

Instructions are not time: they leave out the kernel's part (reading requests
and writing replies, about 0.06 ms a job for payq on this machine) and cache
misses. They show where Redis's own work goes and whether a change cut it;
scenario 1 says what it costs in time. Redis runs about 50 times slower under
callgrind, so the drains are short.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.drain import run_drain
from benchmarks.notify import _wait_settled, receiving
from benchmarks.processes import RedisProc
from benchmarks.report import Row, fmt
from benchmarks.stack import Stack
from benchmarks.workers import Fleet, Shape

RUNS = (("bare-celery", "off"), ("payq", "off"), ("payq", "on"))
QUICK_CAPTURES = 300
FULL_CAPTURES = 1_000
START_TIMEOUT = 60.0  # seconds for redis-server to answer under valgrind


def available() -> str | None:
    """Why the scenario cannot run here (None: it can)."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (apt-get install -y valgrind)"
    return None


def totals(dump: Path) -> int:
    """The instructions a callgrind dump counted: its ``totals:`` line (its ``summary:`` reads 0 after ``--zero``)."""
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"{dump}: no totals line")


class Counter:
    """Instructions of one redis-server under callgrind, between :meth:`start` and :meth:`stop`."""

    def __init__(self, pid: int, out_dir: Path) -> None:
        self.pid = pid
        self.out_dir = out_dir

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.pid)], check=True, capture_output=True, timeout=60)

    def start(self, _fleet: Fleet | None = None) -> None:
        """Count from now: the counters zeroed, collection on."""
        self._control("--zero")
        self._control("--instr=on")

    def stop(self) -> int:
        """Collection off; the instructions since :meth:`start`, from a dump made now."""
        self._control("--instr=off")
        before = set(self.out_dir.iterdir())
        self._control("--dump")
        dumps = sorted(set(self.out_dir.iterdir()) - before, key=lambda p: p.stat().st_mtime)
        if not dumps:
            raise RuntimeError(f"callgrind wrote no dump in {self.out_dir}")
        return totals(dumps[-1])


def run_redis_instructions(shape: Shape, captures: int, *, say: Any = print) -> dict[str, Any]:
    """Drains at 0 ms with Redis under callgrind: bare Celery, payq with notifications off, then on."""
    out_dir = Path(tempfile.mkdtemp(prefix="payq-bench-callgrind-"))
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/redis.%p.out"]
    stack = Stack(RedisProc(wrapper, start_timeout=START_TIMEOUT))
    counter = Counter(stack.redis.pid, out_dir)
    runs: list[dict[str, Any]] = []
    try:
        with receiving() as (receiver, notify_env):
            for system, notifications in RUNS:
                on = notifications == "on"
                if on:
                    receiver.reset()
                found: dict[str, int] = {}

                def after(fleet: Fleet, _calls: list[Any], on: bool = on, found: dict[str, int] = found) -> dict[str, Any]:
                    if on:
                        _wait_settled(stack, fleet.alive)  # the events' delivery is Redis's work for these jobs too
                    found["instructions"] = counter.stop()
                    return {}

                run_drain(stack, system, shape, captures, 0.0, env=notify_env if on else None, on_start=counter.start,
                          after_calls=after, timeout=900, say=say)
                per_job = found["instructions"] / (2 * captures)
                runs.append({"system": system, "notifications": notifications, "instructions_per_job": round(per_job)})
                say(f"    Redis under callgrind: {per_job:,.0f} instructions a job ({system}, notifications {notifications})")
    finally:
        stack.close()
        shutil.rmtree(out_dir, ignore_errors=True)
    return {"captures": captures, "jobs": 2 * captures, "runs": runs}


def rows(figures: dict[str, Any]) -> list[Row]:
    """Each run's instructions per job, and payq's over bare Celery's."""
    section = (f"13. Redis's instructions per job (callgrind; steady whatever the machine's load): drains at 0 ms of "
               f"{figures['captures']:,} captures + their reports")
    by = {(r["system"], r["notifications"]): r["instructions_per_job"] for r in figures["runs"]}
    out = [Row(section, f"{system}{', notifications on' if notes == 'on' else ''}", fmt(n, "instructions"))
           for (system, notes), n in by.items()]
    bare, off, on = by.get(("bare-celery", "off")), by.get(("payq", "off")), by.get(("payq", "on"))
    if bare and off:
        out.append(Row(section, "payq / bare Celery", f"{off / bare:.2f}"))
    if off and on:
        out.append(Row(section, "payq, notifications on / off", f"{on / off:.2f}"))
    return out
