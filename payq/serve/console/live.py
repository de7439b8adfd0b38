"""The jobs that are not dead: queued, running, deferred, waiting; what an operator filters by, and one bounded page of them.

Each state has its index in Redis, kept by the scripts that move jobs:

- queued and running: ``payq:active`` (when the job last became queued or running),
- deferred: ``payq:deferred`` (when it is due),
- waiting: ``payq:waiting`` (refunds held for their capture, since when).

A page walks its index in order (oldest first; for deferred jobs, the next
due first) a batch at a time, reads only the fields it shows of each record
(one pipelined HMGET per batch: a record also holds a held refund's whole
message) and keeps those the filters admit. It stops at a page's worth or
after :data:`SCAN_BUDGET` index entries, whichever comes first, and the next
page carries on from where it stopped: so however long a queue is and however
narrow the filter, one page costs a bounded number of reads. Positions are in
a live index: jobs that leave it meanwhile shift later pages a little, as in
any paginated view of a queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, cast

import redis

from payapi.operations import OPERATIONS, Operation
from payq.durations import age
from payq.views import subject_of
from tasks.jobs.deferral import Deferral
from tasks.redis import keys

PAGE_SIZE = 50
SCAN_BATCH = 200    # index entries read per round trip
SCAN_BUDGET = 2000  # index entries one page looks at, at most, before it offers the next
FIELDS = ("op", "state", "kwargs", "attempts", "worker", "last_attempt_at", "defer", "waiting_for")


class LiveState(StrEnum):
    """The states the Jobs page lists (the settled ones, succeeded and dead, are not live)."""

    QUEUED = "queued"
    RUNNING = "running"
    DEFERRED = "deferred"
    WAITING = "waiting"

    @property
    def index_key(self) -> str:
        """The sorted set that holds the jobs in this state (queued and running share one)."""
        return {LiveState.QUEUED: keys.ACTIVE, LiveState.RUNNING: keys.ACTIVE, LiveState.DEFERRED: keys.DEFERRED,
                LiveState.WAITING: keys.WAITING}[self]

    @property
    def score_means(self) -> str:
        """What the index's time says, for the column's heading."""
        return {LiveState.QUEUED: "queued", LiveState.RUNNING: "started", LiveState.DEFERRED: "due",
                LiveState.WAITING: "waiting since"}[self]


@dataclass(frozen=True)
class JobQuery:
    """The Jobs page's filters: the state (one index), an operation, a store; and where in the index the page starts."""

    state: LiveState = LiveState.QUEUED
    operation: Operation | None = None
    store: str | None = None
    cursor: int = 0
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> JobQuery:
        """The filters in a query string; each bad value is left out (the default used) and named in ``problems``."""
        problems: list[str] = []
        state_text = str(params.get("state") or "").strip() or LiveState.QUEUED.value
        op_text = str(params.get("operation") or "").strip()
        store = str(params.get("store") or "").strip() or None
        state = LiveState.QUEUED
        if state_text in {s.value for s in LiveState}:
            state = LiveState(state_text)
        else:
            problems.append(f"state: must be one of {', '.join(s.value for s in LiveState)}")
        operation = None
        if op_text in {o.value for o in Operation}:
            operation = Operation(op_text)
        elif op_text:
            problems.append(f"operation: must be one of {', '.join(o.value for o in Operation)}")
        cursor_text = str(params.get("cursor") or "0").strip()
        cursor = int(cursor_text) if cursor_text.isdigit() else 0
        return cls(state, operation, store, cursor, tuple(problems))

    def params(self, **changes: Any) -> dict[str, str]:
        """The filters by name (the cursor only past the start), for links and hidden fields."""
        values = {**asdict(self), **changes}
        shown = {name: str(values[name]) for name in ("state", "operation", "store") if values[name] is not None}
        if values["cursor"]:
            shown["cursor"] = str(values["cursor"])
        return shown

    def admits(self, record: Mapping[str, str | None]) -> bool:
        """Whether a record (the :data:`FIELDS` read) is in this page's state, operation and store."""
        state = record.get("state")
        if state is None:  # gone (retention) since the index named it
            return False
        if state != self.state.value:
            return False
        if self.operation is not None and record.get("op") != self.operation.value:
            return False
        return self.store is None or subject_of(kwargs_of(record)).store == self.store


@dataclass(frozen=True)
class Row:
    """One live job as the list shows it."""

    id: str
    operation: str
    store: str
    trip: str
    state: str
    at: float        # the index's time: queued, started, due, or waiting since
    waits_for: str
    attempts: int
    waiting_for: str | None = None  # a held refund's capture


@dataclass(frozen=True)
class JobsPage:
    """One page: its rows, where the next page starts (None: the index ends here), how many entries were looked at, the index's size."""

    rows: list[Row]
    next_cursor: int | None
    scanned: int
    total: int


def waits_for(state: LiveState, record: Mapping[str, str | None], now: float) -> str:
    """What a live job waits for, as a person reads it."""
    op = record.get("op") or ""
    if state is LiveState.QUEUED:
        queue = OPERATIONS[Operation(op)].queue if op in {o.value for o in Operation} else "its queue"
        return f"a worker to take it from {queue}"
    if state is LiveState.RUNNING:
        started = record.get("last_attempt_at")
        since = f" for {age(float(started), now)}" if started else ""
        return f"its call to finish: running on {record.get('worker') or 'a worker'}{since}"
    if state is LiveState.DEFERRED:
        defer = record.get("defer")
        return Deferral.from_json(defer).describe() if defer else "its due time"
    return f"its trip's capture {record.get('waiting_for') or '(unknown)'} to succeed"


def row_of(job_id: str, at: float, state: LiveState, record: Mapping[str, str | None], now: float) -> Row:
    """A record read with :data:`FIELDS` as a :class:`Row`."""
    subject = subject_of(kwargs_of(record))
    return Row(job_id, record.get("op") or "-", subject.store, subject.trip, state.value, at, waits_for(state, record, now),
               int(record.get("attempts") or 0), record.get("waiting_for"))


def page_of(client: redis.Redis, query: JobQuery, now: float, size: int = PAGE_SIZE, budget: int = SCAN_BUDGET) -> JobsPage:
    """The page of live jobs ``query`` asks for, reading at most ``budget`` index entries (plus one batch's overshoot)."""
    index = query.state.index_key
    total = int(client.zcard(index))
    rows: list[Row] = []
    position = query.cursor
    scanned = 0
    while scanned < budget and len(rows) < size:
        batch = cast(list[tuple[str, float]], client.zrange(index, position, position + SCAN_BATCH - 1, withscores=True))
        if not batch:
            return JobsPage(rows, None, scanned, total)
        pipe = client.pipeline(transaction=False)
        for job_id, _ in batch:
            pipe.hmget(keys.job(job_id), FIELDS)
        for (job_id, at), values in zip(batch, pipe.execute(), strict=True):
            position += 1
            scanned += 1
            record = dict(zip(FIELDS, values, strict=True))
            if query.admits(record):
                rows.append(row_of(job_id, float(at), query.state, record, now))
                if len(rows) == size:
                    break
    more = position < total
    return JobsPage(rows, position if more else None, scanned, total)


def counts(client: redis.Redis) -> dict[str, int]:
    """How many jobs each index holds: queued or running together, deferred, waiting (three ZCARDs, one round trip)."""
    pipe = client.pipeline(transaction=False)
    for index in (keys.ACTIVE, keys.DEFERRED, keys.WAITING):
        pipe.zcard(index)
    active, deferred, waiting = (int(n) for n in pipe.execute())
    return {"queued or running": active, "deferred": deferred, "waiting": waiting}


def kwargs_of(record: Mapping[str, str | None]) -> dict[str, Any]:
    """A record's ``kwargs`` field parsed (an empty dict if missing or not a JSON object)."""
    raw = record.get("kwargs")
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}

