"""Scenario 12: what Redis pays per job, by command and by script.

One Redis core serves every worker, so Redis's CPU per job sets how far one
primary goes (docs/scaling.md). ``INFO commandstats`` sums the time of each
command but counts every ``EVALSHA`` as one; Redis keeps no figure per script.
The slowlog does: with ``slowlog-log-slower-than 0`` it keeps every command
with its own execution time and its arguments, so an ``EVALSHA``'s SHA names
its script (``tasks/*/lua/<name>.lua``, :func:`tasks.redis.scripts.sha`).

Each run is a drain at 0 ms (scenario 1's) with the slowlog on, from the
workers ready to every job (and, with notifications on, every event) settled:
bare Celery, then payq with notifications off and on. The figures per payment
job: Redis's CPU (``INFO cpu``), the time inside commands (the slowlog's
entries summed: a command a script calls has an entry of its own, from the
client ``?:0``, and is left out, its time being in the script's), and each
command's and script's share. What is outside commands is Redis reading
requests and writing replies, and its event loop.

The slowlog costs Redis CPU of its own: an entry per command, and one per
command a script calls, made while the script runs, so a script's time reads
higher than without it (by about a fifth, on a script of 100 calls). The
shares are what this scenario is for; scenario 1's drain gives the totals
without the slowlog. The drain is capped at :data:`MAX_CAPTURES` captures:
each entry keeps its arguments, and a longer slowlog would cost Redis memory
the drain does not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import redis

from benchmarks.calls import Call
from benchmarks.drain import run_drain
from benchmarks.notify import _wait_settled, receiving
from benchmarks.report import Row, fmt
from benchmarks.stack import Stack
from benchmarks.workers import Fleet, Shape
from tasks.redis import scripts

MAX_CAPTURES = 3_000
SLOWLOG_ENTRIES = 200_000  # each keeps its first 32 arguments, 128 bytes of each: at most ~100 MB
SCRIPT_CLIENT = "?:0"  # the slowlog's client address for a command called from a script
MEASURING = ("slowlog", "config")  # this scenario's own commands
RUNS = (("bare-celery", "off"), ("payq", "off"), ("payq", "on"))


def script_names() -> dict[str, str]:
    """Every script's SHA (as payq sends it) → its name; fragments in ``lua/lib`` are not scripts."""
    names: dict[str, str] = {}
    for path in scripts.every_script():
        if path.parent.name == "lua":
            names[scripts.sha(path.stem)] = path.stem
    return names


def command_of(args: list[Any], names: dict[str, str]) -> str:
    """What one slowlog entry ran: a script's name for ``EVALSHA`` (or an ``EVAL`` of a known script), else the command."""
    if not args:
        return "?"
    words = [a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in args]
    command = words[0].lower()
    if command in ("evalsha", "evalsha_ro") and len(words) > 1:
        return "script " + names.get(words[1].lower(), words[1][:12])
    if command in ("eval", "eval_ro"):
        return "script (sent whole: EVAL)"
    if command in ("client", "config", "xinfo", "slowlog", "cluster", "object", "memory", "script") and len(words) > 1:
        return f"{command} {words[1].lower()}"
    return command


def breakdown(entries: list[dict[str, Any]], names: dict[str, str]) -> dict[str, dict[str, float]]:
    """Calls and microseconds per command or script, from slowlog entries."""
    by: dict[str, dict[str, float]] = defaultdict(lambda: {"calls": 0.0, "usec": 0.0})
    for entry in entries:
        if _text(entry.get("client_address", b"")) == SCRIPT_CLIENT:
            continue  # a command a script called: its time is in the script's already
        what = command_of(_split(entry.get("command", b"")), names)
        if what.startswith(MEASURING):
            continue
        by[what]["calls"] += 1
        by[what]["usec"] += float(entry["duration"])
    return dict(by)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _split(command: bytes | str) -> list[str]:
    """redis-py joins an entry's arguments with spaces; the command and a script's SHA are the first two words."""
    return _text(command).split(" ", 2)


def _cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


@contextmanager
def slowlog_everything(client: redis.Redis) -> Iterator[None]:
    """Every command in the slowlog while inside; the settings as they were after."""
    before: dict[str, str] = {str(k): str(v) for k, v in client.config_get("slowlog-*").items()}
    client.config_set("slowlog-max-len", SLOWLOG_ENTRIES)
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()
    try:
        yield
    finally:
        for key, value in before.items():
            client.config_set(key, value)


class Meter:
    """Redis's CPU, time in commands and the slowlog from :meth:`start` to :meth:`stop`."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._cpu0 = 0.0

    def start(self, _fleet: Fleet | None = None) -> None:
        """Begin: an empty slowlog, the counters as they are now."""
        self.client.slowlog_reset()
        self._cpu0 = _cpu_s(self.client)

    def stop(self, jobs: int) -> dict[str, Any]:
        """The figures per job since :meth:`start`."""
        cpu_s = _cpu_s(self.client) - self._cpu0
        entries = self.client.slowlog_get(-1)
        per = max(jobs, 1)
        by = breakdown(entries, script_names())
        usec = sum(v["usec"] for v in by.values())
        commands = {name: {"calls_per_job": round(v["calls"] / per, 3), "us_per_job": round(v["usec"] / per, 2),
                           "us_per_call": round(v["usec"] / max(v["calls"], 1), 2)}
                    for name, v in sorted(by.items(), key=lambda item: -item[1]["usec"])}
        return {"redis_cpu_ms_per_job": round(cpu_s * 1000 / per, 3), "in_commands_ms_per_job": round(usec / 1000 / per, 3),
                "slowlog_entries": len(entries), "slowlog_full": len(entries) >= SLOWLOG_ENTRIES, "commands": commands}


def run_redis_cost(stack: Stack, shape: Shape, captures: int, *, tweaks: tuple[str, ...] = (), say: Any = print) -> dict[str, Any]:
    """Drains at 0 ms with every command in the slowlog: bare Celery, payq with notifications off, then on."""
    captures = min(captures, MAX_CAPTURES)
    runs: list[dict[str, Any]] = []
    with slowlog_everything(stack.client), receiving() as (receiver, notify_env):
        for system, notifications in RUNS:
            meter = Meter(stack.client)
            env = notify_env if notifications == "on" else None
            if notifications == "on":
                receiver.reset()
            result = run_drain(stack, system, shape, captures, 0.0, env=env,
                               tweaks=tweaks if system == "payq" else (), on_start=meter.start,
                               after_calls=partial(_measured, stack, meter, 2 * captures, notifications == "on"), say=say)
            figures = {"system": system, "notifications": notifications, "rate": result.rate,
                       "drain_redis_cpu_ms_per_job": result.redis_cpu_ms_per_job, **result.extra}
            runs.append(figures)
            top = ", ".join(f"{name} {v['us_per_job']:.1f}" for name, v in list(figures["commands"].items())[:5])
            say(f"    Redis per job: {figures['redis_cpu_ms_per_job']:.3f} ms CPU, {figures['in_commands_ms_per_job']:.3f} ms in "
                f"commands ({top} µs)")
    return {"captures": captures, "jobs": 2 * captures, "shape": shape.label, "runs": runs}


def _measured(stack: Stack, meter: Meter, jobs: int, notifications: bool, fleet: Fleet, calls: list[Call]) -> dict[str, Any]:
    if notifications:
        _wait_settled(stack, fleet.alive)  # the events' delivery is Redis's work for these jobs too
    return meter.stop(jobs)


def rows(figures: dict[str, Any]) -> list[Row]:
    """The report's rows: each run's totals, then its commands and scripts, largest first."""
    section = (f"12. What Redis pays per job: drains at 0 ms of {figures['captures']:,} captures + their reports, every command "
               "in the slowlog (which costs Redis CPU of its own: scenario 1's figure is the one without it)")
    out: list[Row] = []
    for run in figures["runs"]:
        label = run["system"] + (", notifications on" if run["notifications"] == "on" else "")
        out.append(Row(section, f"{label}: Redis CPU / in commands, per job",
                       f"{fmt(run['redis_cpu_ms_per_job'], '', 3)} / {fmt(run['in_commands_ms_per_job'], 'ms', 3)}"))
        shown = 0.0
        for name, v in list(run["commands"].items())[:8]:
            shown += v["us_per_job"]
            out.append(Row(section, f"  {name}: calls per job, µs per call",
                           f"{fmt(v['us_per_job'], 'µs', 1)} ({v['calls_per_job']:.2f} × {v['us_per_call']:.1f})"))
        rest = sum(v["us_per_job"] for v in run["commands"].values()) - shown
        if rest > 0:
            out.append(Row(section, "  every other command", fmt(rest, "µs", 1)))
    return out
