"""The table a run prints, the Markdown copy for docs/benchmarks.md, and ``results/latest.json``."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    """One line of the table: what, the figure, the target, whether it is met (None: no target), and why a miss is expected."""

    section: str
    metric: str
    value: str
    target: str = ""
    ok: bool | None = None
    why: str = ""  # a missed target's reason, from the run's own figures: a miss nobody explains is worse than none


def machine_facts(redis_info: dict[str, Any]) -> dict[str, Any]:
    """CPU count and model, memory, and the versions of everything measured."""
    import celery
    import dramatiq
    import gevent  # type: ignore[import-untyped]
    import hiredis
    import kombu
    import redis
    import requests

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        mem_kib = 0
    return {
        "cpu_count": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem_kib / 2**20, 1),
        "platform": platform.platform(), "python": platform.python_version(),
        "celery": celery.__version__, "kombu": kombu.__version__, "redis_py": redis.__version__,
        "hiredis": getattr(hiredis, "__version__", "?"), "requests": requests.__version__,
        "dramatiq": dramatiq.__version__, "gevent": gevent.__version__,
        "redis_server": redis_info.get("redis_version", "?"), "load_average_at_start": list(os.getloadavg()),
    }


def fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    """A number for the table; ``—`` for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip()


def render_text(title: str, rows: list[Row]) -> str:
    """The table as printed: aligned columns, a section heading whenever the section changes."""
    width_metric = max([len(r.metric) for r in rows] + [10])
    width_value = max([len(r.value) for r in rows] + [5])
    width_target = max([len(r.target) for r in rows] + [6])
    lines = [title, ""]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(section)
        mark = {True: "ok", False: "MISSED", None: ""}[row.ok] + (f" ({row.why})" if row.ok is False and row.why else "")
        lines.append(f"  {row.metric:<{width_metric}}  {row.value:>{width_value}}  {row.target:<{width_target}}  {mark}".rstrip())
    return "\n".join(lines)


def render_markdown(title: str, rows: list[Row]) -> str:
    """The same table in Markdown, for docs/benchmarks.md."""
    lines = [f"**{title}**", "", "| | measured | target | |", "| --- | ---: | --- | --- |"]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(f"| **{section}** | | | |")
        mark = {True: "✓", False: "✗ missed", None: ""}[row.ok] + (f": {row.why}" if row.ok is False and row.why else "")
        lines.append(f"| {row.metric} | {row.value} | {row.target} | {mark} |")
    return "\n".join(lines)


def write(results: dict[str, Any], text: str, markdown: str, out: Path | None = None) -> Path:
    """Write ``latest.json`` (and ``latest.md``) atomically; returns the JSON path."""
    path = out or RESULTS / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({**results, "table": text.splitlines()}, indent=2, default=str) + "\n")
    tmp.replace(path)
    md = path.with_suffix(".md")
    md_tmp = md.with_suffix(".md.tmp")
    md_tmp.write_text(markdown + "\n")
    md_tmp.replace(md)
    return path
