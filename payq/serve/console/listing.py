"""The dead-letter list: what an operator filters by, and one page of what matches.

Unfiltered (or filtered by age only) a page is two index reads: a count and
one page of ids newest first, then one HMGET, however many entries there are.
Filtered by reason, operation, store or a search, every entry in the age
range is read with :meth:`DeadLetterStore.list` (the CLI's own selection) and
filtered here: the total and "replay all that match" need them all anyway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from payapi.errors import InvalidRequest
from payapi.operations import Operation
from payq.durations import parse_duration
from payq.views import subject_of
from tasks.states import DeadLetterReason
from tasks.store.deadletters import DeadLetter, DeadLetterStore

PAGE_SIZE = 50
ORDERS = ("newest", "oldest")  # by when an entry was dead-lettered; newest first unless asked


@dataclass(frozen=True)
class DeadLetterQuery:
    """The list's filters, as typed (durations like ``2h`` or ``7d``); build it with :meth:`parse`."""

    reason: DeadLetterReason | None = None
    operation: Operation | None = None
    store: str | None = None
    since: str | None = None       # dead-lettered within this long
    older_than: str | None = None  # dead-lettered longer ago than this
    q: str | None = None           # part of a job id or a shoppingTripId
    order: str | None = None       # "oldest" for oldest first; None: newest first
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> DeadLetterQuery:
        """The filters in ``params`` (a query string or a form); each bad value is left out and named in ``problems``."""
        problems: list[str] = []

        def text(name: str) -> str | None:
            value = str(params.get(name) or "").strip()
            return value or None

        def choice(name: str, kind: type[DeadLetterReason] | type[Operation]) -> str | None:
            value = text(name)
            if value is not None and value not in {c.value for c in kind}:
                problems.append(f"{name}: must be one of {', '.join(c.value for c in kind)}")
                return None
            return value

        def duration(name: str) -> str | None:
            value = text(name)
            if value is not None:
                try:
                    parse_duration(value, name)
                except InvalidRequest as exc:
                    problems.extend(str(p) for p in exc.problems)
                    return None
            return value

        reason, operation = choice("reason", DeadLetterReason), choice("operation", Operation)
        order = text("order")
        if order is not None and order not in ORDERS:
            problems.append(f"order: must be one of {', '.join(ORDERS)}")
        return cls(
            reason=DeadLetterReason(reason) if reason else None, operation=Operation(operation) if operation else None,
            store=text("store"), since=duration("since"), older_than=duration("older_than"), q=text("q"),
            order="oldest" if order == "oldest" else None, problems=tuple(problems),
        )

    def params(self) -> dict[str, str]:
        """The filters (and the order) that are set, by name: for links and hidden fields."""
        return {name: str(value) for name, value in asdict(self).items() if value is not None and name != "problems"}

    @property
    def oldest_first(self) -> bool:
        """Whether the list runs oldest first."""
        return self.order == "oldest"

    @property
    def narrows(self) -> bool:
        """Whether anything but the age is filtered on (then every entry in the age range must be read)."""
        return any(v is not None for v in (self.reason, self.operation, self.store, self.q))

    def bounds(self, now: float) -> tuple[float | None, float | None]:
        """``(since, older_than)`` as epoch seconds of dead-lettering, counted back from ``now`` (None: no bound)."""
        since = now - parse_duration(self.since, "since") if self.since else None
        older_than = now - parse_duration(self.older_than, "older_than") if self.older_than else None
        return since, older_than

    def frozen_bounds(self, as_of: float) -> tuple[float | None, float]:
        """The bounds of a "replay all" confirmed at ``as_of``: what was dead-lettered after it (anew, or first) is left out."""
        since, older_than = self.bounds(as_of)
        return since, as_of if older_than is None else older_than

    def admits(self, entry: DeadLetter) -> bool:
        """Whether ``entry`` passes every filter but the age (the index answers that)."""
        about = subject_of(entry.kwargs)  # a notification's store and trip are those of the job it tells of
        if self.q is not None:
            needle = self.q.casefold()
            if needle not in entry.id.casefold() and needle not in about.trip.casefold():
                return False
        return ((self.reason is None or entry.reason == self.reason) and (self.operation is None or entry.operation == self.operation)
                and (self.store is None or about.store == self.store))

    def select(self, store: DeadLetterStore, since: float | None, older_than: float | None) -> list[DeadLetter]:
        """Every matching entry dead-lettered between ``since`` and ``older_than``, in the query's order: the store's ``list``, then the search."""
        entries = store.list(operation=self.operation, reason=self.reason, since=since, older_than=older_than)
        found = [e for e in entries if self.admits(e)]
        return found[::-1] if self.oldest_first else found


@dataclass(frozen=True)
class Page:
    """One page of the list: its entries, how many match in all, and where it is (``number`` from 1)."""

    entries: list[DeadLetter]
    total: int
    number: int
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        """How many pages the matches fill (at least one)."""
        return max(1, math.ceil(self.total / self.size))

    @property
    def first(self) -> int:
        """The position of the page's first entry among the matches (0 when the page is empty)."""
        return (self.number - 1) * self.size + 1 if self.entries else 0

    @property
    def last(self) -> int:
        """The position of the page's last entry among the matches."""
        return self.first + len(self.entries) - 1 if self.entries else 0


def page_of(store: DeadLetterStore, query: DeadLetterQuery, number: int, now: float, size: int = PAGE_SIZE) -> Page:
    """Page ``number`` of the entries ``query`` admits, in its order."""
    since, older_than = query.bounds(now)
    offset = (number - 1) * size
    if not query.narrows:
        return Page(store.page(since=since, older_than=older_than, offset=offset, count=size, oldest_first=query.oldest_first),
                    store.count(since=since, older_than=older_than), number, size)
    found = query.select(store, since, older_than)
    return Page(found[offset : offset + size], len(found), number, size)
