"""How long commands say where they are: a progress bar on a terminal, counts otherwise; and ``payq enqueue --file``'s tally."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click

from tasks.store.records import Enqueued


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """``advance(n)`` for ``total`` items: click's bar on stderr when it is a terminal, else a line of counts per step (a log reads those)."""
    if sys.stderr.isatty():
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield bar.update
        return
    done = 0

    def count(n: int) -> None:
        nonlocal done
        done += n
        click.echo(f"{label}: {done} of {total}", err=True)

    yield count


@dataclass
class Tally:
    """What ``payq enqueue --file`` did, line by line: enqueued, already there (the same job), refused (its id holds another job)."""

    enqueued: int = 0
    already: int = 0
    refusals: list[str] = field(default_factory=list)

    @property
    def refused(self) -> int:
        """Lines refused: their id holds a job with other fields."""
        return len(self.refusals)

    def add(self, result: Enqueued, line: int) -> None:
        """Count one line's result (``line``: its number in the file)."""
        if result.conflict:
            reasons = "; ".join(f"{d.field}: {d.rule}" for d in result.differences)
            self.refusals.append(f"line {line}: refused {result.job.job_id}: {reasons}")
        elif result.created:
            self.enqueued += 1
        else:
            self.already += 1

    def summary(self) -> str:
        """One line: ``enqueued 9, already there 1, refused 0``."""
        return f"enqueued {self.enqueued}, already there {self.already}, refused {self.refused}"
