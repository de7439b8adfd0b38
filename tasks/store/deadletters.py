"""The dead-letter store: jobs that will not succeed without an operator.

One entry per job id (``payq:dlq``, a hash of JSON entries, indexed by time in
``payq:dlq:index``, counted by reason in ``payq:dlq:reasons``). Entries leave
only by ``replay`` or ``purge``, or by ``trim`` once older than the retention.

Every write is one script (``tasks/store/lua/dlq_*.lua``), so the hash, the index
and the counts never disagree. Replay removes the entry in the same atomic
step that publishes the job, and only if the entry is still the one the
operator looked at: a failed publish keeps the entry, and two operators
replaying at once replay it once.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any, cast

import redis
from pydantic import BaseModel, Field

from payapi.models import NotificationEvent
from payapi.operations import OPERATIONS, Operation
from payapi.outcomes import Failure, FailureKind
from tasks.jobs.deferral import failure_json
from tasks.jobs.messages import WireKwargs, message_of, sent_event_channel_of, sent_event_of
from tasks.notify.events import Event, body_of, dead_lettered
from tasks.notify.outbox import event_args
from tasks.redis import keys, scripts
from tasks.states import DeadLetterReason

_REREADS = 5  # an entry rewritten this often while being replayed is left for the operator to retry
_BATCH = 500  # ids per script call: long enough to be quick, short enough not to stall Redis


class DeadLetter(BaseModel):  # type: ignore[no-redef]  # pydantic's mypy plugin trips over a field named kwargs
    """Everything known about a dead-lettered job; ``kwargs`` carries its idempotency key.

    The failure's facts are fields (``kind``, ``status``, ``error_type``,
    ``error_msg``, ``detail``); ``error`` is the line an operator reads, made
    from them when the job was dead-lettered (an entry written by an older
    payq has only that line, and no ``kind``).
    """

    id: str
    operation: Operation
    task: str
    kwargs: dict[str, Any]
    reason: DeadLetterReason
    kind: FailureKind | None = None
    status: int | None = None
    error_type: str | None = None
    error_msg: str | None = None
    detail: str | None = None
    error: str
    attempts: int
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    dead_at: float
    worker: str | None = None
    replays: int = 0
    history: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, failure: Failure, **fields: Any) -> DeadLetter:
        """An entry for ``failure`` with the job's ``fields``."""
        return cls(kind=failure.kind, status=failure.status, error_type=failure.error_type, error_msg=failure.error_msg,
                   detail=failure.detail, error=failure.describe(), **fields)

    @property
    def failure(self) -> Failure:
        """The failure that put the job here (for an older payq's entry, its line as the detail)."""
        if self.kind is None:
            return Failure(FailureKind.UNEXPECTED, self.status, detail=self.error)
        return Failure(self.kind, self.status, self.error_type, self.error_msg, self.detail)

    @property
    def store_id(self) -> str:
        """The entry's storeId (an outcome notification's is the job's it tells of, in its ``data``)."""
        return str(self._about().get("storeId") or "")

    @property
    def trip_id(self) -> str:
        """The entry's shoppingTripId (an outcome notification's, as :attr:`store_id`)."""
        return str(self._about().get("shoppingTripId") or "")

    def _about(self) -> dict[str, Any]:
        if self.operation is Operation.NOTIFY and isinstance(self.kwargs.get("data"), dict):
            data: dict[str, Any] = self.kwargs["data"]
            return data
        return self.kwargs


class DeadLetterStore:
    """add / list / get / replay / purge / trim over the dead-letter entries in Redis (and count / page, for showing a long list)."""

    def __init__(self, client: redis.Redis, job_retention_seconds: int, retention_seconds: int, *, notify: bool = False) -> None:
        self._redis = client
        self._notify = notify  # outcome notifications are on: a capture-failed refund gets its event
        self._job_ttl = job_retention_seconds
        self._retention = retention_seconds
        self._events = sent_event_channel_of(client)
        self._add = scripts.register(client, "dlq_add")
        self._replay = scripts.register(client, "dlq_replay")
        self._replay_event = scripts.register(client, "dlq_replay_event")
        self._purge = scripts.register(client, "dlq_purge")
        self._trim = scripts.register(client, "dlq_trim")
        self._recount = scripts.register(client, "dlq_recount")

    @property
    def _keys(self) -> list[str]:
        return [keys.DEAD_LETTERS, keys.DEAD_LETTER_INDEX, keys.DEAD_LETTER_REASONS]

    def add(self, entry: DeadLetter, event: Event | None = None, claim: str = "") -> bool:
        """Store ``entry`` (with its replay history) and mark its job dead, atomically.

        Written before the message is acknowledged. The job record, which is
        also the job's idempotency key, is kept at least as long as the entry,
        so the job cannot be enqueued afresh while it waits for an operator.
        ``event``, the dead-lettering's notification, is appended to the outbox in the same step.
        ``claim`` is the delivery's claim on the job ('': it claimed none); False,
        nothing written, if another worker holds the job (:mod:`tasks.store.leases`).
        """
        history = [json.loads(h) for h in self._redis.lrange(keys.replays(entry.id), 0, -1)]
        entry = entry.model_copy(update={"history": history, "replays": len(history)})
        return bool(self._add(
            keys=[*self._keys, keys.job(entry.id), keys.LEASES],
            args=[entry.id, entry.model_dump_json(), entry.dead_at, entry.reason, failure_json(entry.failure),
                  max(self._job_ttl, self._retention), _books_of(entry), keys.ACTIVE, self._events, claim,
                  *event_args(event), _backlog_of(entry)],
        ))

    def get(self, entry_id: str) -> DeadLetter | None:
        """The entry for job ``entry_id``, or None."""
        raw = self._redis.hget(keys.DEAD_LETTERS, entry_id)
        return DeadLetter.model_validate_json(raw) if raw else None

    def list(
        self,
        *,
        operation: str | None = None,
        store_id: str | None = None,
        reason: str | None = None,
        since: float | None = None,
        older_than: float | None = None,
    ) -> list[DeadLetter]:
        """Entries newest first, filtered; ``since``/``older_than`` are epoch seconds of dead-lettering."""
        ids = cast(builtins.list[str], self._redis.zrevrangebyscore(keys.DEAD_LETTER_INDEX, _high(older_than), _low(since)))
        if not ids:
            return []
        entries = [DeadLetter.model_validate_json(raw) for raw in self._redis.hmget(keys.DEAD_LETTERS, ids) if raw]
        return [
            e for e in entries
            if (operation is None or e.operation == operation)
            and (store_id is None or e.store_id == store_id)
            and (reason is None or e.reason == reason)
        ]

    def count(self, *, since: float | None = None, older_than: float | None = None) -> int:
        """How many entries were dead-lettered between ``since`` and ``older_than`` (epoch seconds; None: no bound), from the index alone."""
        return int(self._redis.zcount(keys.DEAD_LETTER_INDEX, _low(since), _high(older_than)))

    def page(self, *, since: float | None = None, older_than: float | None = None, offset: int = 0, count: int = 50,
             oldest_first: bool = False) -> builtins.list[DeadLetter]:
        """``count`` entries newest first (or oldest first) from ``offset``, between ``since`` and ``older_than``: one index read and one HMGET.

        For showing a long list a page at a time without reading all of it;
        an entry replayed between the two reads is left out.
        """
        if oldest_first:
            ids = cast(builtins.list[str], self._redis.zrangebyscore(
                keys.DEAD_LETTER_INDEX, _low(since), _high(older_than), start=offset, num=count,
            ))
        else:
            ids = cast(builtins.list[str], self._redis.zrevrangebyscore(
                keys.DEAD_LETTER_INDEX, _high(older_than), _low(since), start=offset, num=count,
            ))
        if not ids:
            return []
        return [DeadLetter.model_validate_json(raw) for raw in self._redis.hmget(keys.DEAD_LETTERS, ids) if raw]

    def replay(self, entry_id: str, by: str = "operator") -> Replayed:
        """Publish the job again (same id and idempotency key, attempts reset)."""
        entry = self.get(entry_id)
        return Replayed.GONE if entry is None else self.replay_entries([entry], by)[0]

    def replay_entries(self, entries: Iterable[DeadLetter], by: str = "operator") -> builtins.list[Replayed]:
        """Replay entries as read by :meth:`list` or :meth:`get`, pipelined; what became of each.

        An entry that changed since it was read (the job was replayed and
        dead-lettered again meanwhile) is read again, so its history records
        the failure the operator is actually replaying.
        """
        batch = list(entries)
        now = time.time()
        traces = self._traceparents(batch)
        pipe = self._redis.pipeline(transaction=False)
        for entry in batch:
            self._replay_one(entry, by, now, pipe, traces.get(entry.id, ""))
        results = [int(r) for r in pipe.execute()]
        for i, entry in enumerate(batch):
            for _ in range(_REREADS):
                if results[i] != -1:
                    break
                fresh = self.get(entry.id)
                results[i] = 0 if fresh is None else int(self._replay_one(fresh, by, time.time(), self._redis, traces.get(entry.id, "")))
        return [_REPLAY_ANSWERS[r] for r in results]

    def _traceparents(self, entries: builtins.list[DeadLetter]) -> dict[str, str]:
        """Each job's trace context from its record (one round trip): a replay stays in the job's trace. None for notifications."""
        jobs = [entry.id for entry in entries if entry.operation is not Operation.NOTIFY]
        if not jobs:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for job_id in jobs:
            pipe.hget(keys.job(job_id), "traceparent")
        return {job_id: str(value) for job_id, value in zip(jobs, pipe.execute(), strict=True) if value}

    def _replay_one(self, entry: DeadLetter, by: str, now: float, client: Any, traceparent: str = "") -> Any:
        history = json.dumps({"replayed_at": now, "by": by, "reason": entry.reason, "status": entry.status,
                              "failure": json.loads(failure_json(entry.failure)), "attempts": entry.attempts,
                              "dead_at": entry.dead_at})
        if entry.operation is Operation.NOTIFY:  # a notification goes back to the outbox, not to a queue
            event = NotificationEvent.model_validate(entry.kwargs)
            return self._replay_event(
                keys=[*self._keys, keys.OUTBOX, keys.OUTBOX_PENDING, keys.replays(entry.id)],
                args=[entry.id, repr(entry.dead_at), event.id, body_of(event), event.data.jobId, now, history,
                      max(self._job_ttl, self._retention)],
                client=client,
            )
        written = WireKwargs.of(entry.kwargs)
        return self._replay(
            keys=[*self._keys, OPERATIONS[entry.operation].queue, keys.job(entry.id), keys.replays(entry.id), keys.ACTIVE],
            args=[entry.id, repr(entry.dead_at), message_of(entry.operation, entry.id, written, traceparent), now, history,
                  written.json, entry.operation, max(self._job_ttl, self._retention), self._events,
                  sent_event_of(entry.operation, entry.id, written, now), _books_of(entry), str(entry.kwargs.get("storeId", "")),
                  _backlog_of(entry)],
            client=client,
        )

    def purge(self, entry_ids: Iterable[str], dead_before: float | None = None) -> int:
        """Delete these entries (only those dead-lettered at or before ``dead_before``, if given); returns how many.

        A purged refund leaves its trip's books. A purged capture does too, and
        the refunds that waited for it are dead-lettered as ``capture-failed``
        in the same step: they are not sent unless an operator replays them.
        """
        before, _, after = Failure(FailureKind.CAPTURE_FAILED, error_type="\0").describe().partition("\0")
        ttl = max(self._job_ttl, self._retention)
        fixed: list[Any] = [keys.TRIP_PREFIX, keys.JOB_PREFIX, OPERATIONS[Operation.REFUND].task, before, after, ttl,
                            "1" if self._notify else "0", self._events, keys.ACTIVE, keys.backlog("")]
        removed = 0
        for chunk in _chunks(list(entry_ids), _BATCH):
            for _ in range(_REREADS):
                now = time.time()
                events = self._capture_failed_events(chunk, now) if self._notify else []
                flat = [value for refund_id, event in events for value in (refund_id, *event_args(event))]
                purged = int(self._purge(keys=[*self._keys, keys.WAITING],
                                         args=["" if dead_before is None else dead_before, now, *fixed, len(events), *flat, *chunk]))
                if purged != -1:  # -1: a refund began to wait meanwhile, without its notification: read again
                    removed += purged
                    break
            else:
                raise redis.RedisError("refunds kept beginning to wait while their capture was being purged; try again")
        return removed

    def _capture_failed_events(self, entry_ids: builtins.list[str], now: float) -> builtins.list[tuple[str, Event]]:
        """The notifications of the refunds waiting for the captures among ``entry_ids``, had they to fail now."""
        events: builtins.list[tuple[str, Event]] = []
        for raw in self._redis.hmget(keys.DEAD_LETTERS, entry_ids):
            entry = DeadLetter.model_validate_json(raw) if raw else None
            if entry is None or entry.operation is not Operation.CAPTURE:
                continue
            held = cast(builtins.list[str], self._redis.lrange(keys.held(entry.store_id, entry.trip_id), 0, -1))
            failure = Failure(FailureKind.CAPTURE_FAILED, error_type=entry.id)
            for refund_id in held:
                record = cast(dict[str, str], self._redis.hgetall(keys.job(refund_id)))
                if record.get("state") == "waiting":
                    event = dead_lettered(refund_id, Operation.REFUND, json.loads(record["kwargs"]),
                                                 DeadLetterReason.CAPTURE_FAILED, failure, int(record.get("replays", 0)), now)
                    events.append((refund_id, event))
        return events

    def trim(self, now: float) -> int:
        """Delete entries dead-lettered longer ago than the retention; returns how many."""
        removed = 0
        while True:
            seen, gone = self._trim(keys=self._keys, args=[now - self._retention, _BATCH])
            removed += int(gone)
            if int(seen) < _BATCH:
                return removed

    def count_by_reason(self) -> dict[str, int]:
        """How many entries there are for each reason (two O(1)-ish reads; a recount only if they disagree)."""
        try:
            counts, total = self._counts(transaction=True)
        except redis.OutOfMemoryError:
            # a full Redis (maxmemory, noeviction) queues no command in a MULTI, reads too: read them one after the other
            counts, total = self._counts(transaction=False)
        parsed = {reason: int(n) for reason, n in counts.items()}
        if sum(parsed.values()) != total or any(n <= 0 for n in parsed.values()):
            flat = self._recount(keys=[keys.DEAD_LETTERS, keys.DEAD_LETTER_REASONS])
            parsed = {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}
        return parsed

    def _counts(self, *, transaction: bool) -> tuple[dict[str, str], int]:
        """The per-reason counts and the number of entries, read together (in one MULTI, with ``transaction``)."""
        pipe = self._redis.pipeline(transaction=transaction)
        pipe.hgetall(keys.DEAD_LETTER_REASONS)
        pipe.hlen(keys.DEAD_LETTERS)
        counts, total = pipe.execute()
        return counts, int(total)


class Replayed(StrEnum):
    """What a replay did with an entry."""

    REPLAYED = "replayed"
    GONE = "gone"                # no such entry: replayed or purged by someone else
    CHANGED = "changed"          # dead-lettered anew while being replayed, more often than re-reading allows
    OVER_REFUND = "over-refund"  # a refund its trip no longer has room for: left in the store


# the replay script's answers
_REPLAY_ANSWERS = {1: Replayed.REPLAYED, 0: Replayed.GONE, -1: Replayed.CHANGED, -2: Replayed.OVER_REFUND}


def _books_of(entry: DeadLetter) -> str:
    """The key of a refund's trip books ('' for any other job): dead-lettering and replaying move its amount."""
    if entry.operation is not Operation.REFUND:
        return ""
    return keys.trip(str(entry.kwargs.get("storeId", "")), str(entry.kwargs.get("shoppingTripId", "")))


def _backlog_of(entry: DeadLetter) -> str:
    """The backlog set its job joined at enqueue (tasks/store/backlog.py); '' for a notification, which joined none."""
    return "" if entry.operation is Operation.NOTIFY else keys.backlog(str(entry.kwargs.get("storeId", "")))


def _low(since: float | None) -> float | str:
    return "-inf" if since is None else since


def _high(older_than: float | None) -> float | str:
    return "+inf" if older_than is None else older_than


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
