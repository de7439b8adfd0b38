"""The fault suite's figures: one line per scenario, printed at the end of the run and kept in ``last-run.txt``.

Each scenario records a :class:`Figures` before its final assertions, so a
failing run still shows what it counted. Under xdist the figures are made in
the workers; they reach the printing process through files in a run directory
(see ``conftest.py`` for who prints).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

LAST_RUN = Path(__file__).with_name("last-run.txt")


@dataclass(frozen=True)
class Figures:
    """What one scenario (or one part of it) did: jobs, faults injected, jobs lost, duplicate calls and why."""

    scenario: int
    title: str
    jobs: int
    jobs_detail: str
    faults: str
    lost: int
    duplicates: int
    duplicate_cause: str = ""
    notes: str = ""
    seconds: float = 0.0


@dataclass
class Recorder:
    """Collects this process's figures; ``add`` is what a scenario calls."""

    figures: list[Figures] = field(default_factory=list)

    def add(self, figures: Figures) -> None:
        """Record ``figures`` (replacing an earlier record of the same scenario part, e.g. from a rerun)."""
        self.figures = [f for f in self.figures if (f.scenario, f.jobs_detail) != (figures.scenario, figures.jobs_detail)]
        self.figures.append(figures)

    def dump(self, path: Path) -> None:
        """Write the figures as JSON (for the process that prints)."""
        path.write_text(json.dumps([asdict(f) for f in self.figures]))


def load(paths: Iterable[Path]) -> list[Figures]:
    """Figures written by :meth:`Recorder.dump` in other processes."""
    found: list[Figures] = []
    for path in paths:
        found += [Figures(**item) for item in json.loads(path.read_text())]
    return found


def lines(figures: list[Figures]) -> list[str]:
    """One line per scenario, parts of a scenario merged, in scenario order."""
    out = []
    for number in sorted({f.scenario for f in figures}):
        parts = [f for f in figures if f.scenario == number]
        jobs = sum(p.jobs for p in parts)
        lost = sum(p.lost for p in parts)
        duplicates = sum(p.duplicates for p in parts)
        detail = "; ".join(p.jobs_detail for p in parts if p.jobs_detail)
        faults = "; ".join(p.faults for p in parts if p.faults)
        causes = "; ".join(p.duplicate_cause for p in parts if p.duplicate_cause)
        notes = "; ".join(p.notes for p in parts if p.notes)
        seconds = sum(p.seconds for p in parts)
        text = (f"{number}. {parts[0].title}: {jobs:,} jobs ({detail}) | faults: {faults} | lost: {lost}"
                f" | duplicates: {duplicates}" + (f" ({causes})" if causes else ""))
        if notes:
            text += f" | {notes}"
        out.append(text + f" | {seconds:.0f}s")
    return out


def render(figures: list[Figures]) -> str:
    """The summary block: a header and one line per scenario."""
    return "\n".join(["payq fault-tolerance suite: one line per scenario (lost must be 0)", *lines(figures)])


def write_last_run(figures: list[Figures]) -> None:
    """Keep the summary for docs/reliability.md ("The fault-tolerance suite"), stamped with when it ran."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    LAST_RUN.write_text(f"# {stamp}\n{render(figures)}\n")
