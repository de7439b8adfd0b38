"""The outbox of outcome notifications: a Redis Stream read by the workers' consumer group.

The script that records an outcome appends its event in the same step
(``lua/lib/outbox.lua`` ``append_event``): an outcome is never recorded without
its event, nor an event sent for an outcome that was not. Each worker process
delivers with a loop of its own (:mod:`workers.delivery`): it reads entries
with ``XREADGROUP`` as one consumer of :data:`keys.OUTBOX_GROUP`, POSTs them,
and settles each in one script (:meth:`Outbox.settle`): acknowledged and
removed from the stream, then forgotten or kept in the retry set until due.
An entry its consumer never settled (the worker was killed mid-delivery)
stays pending in the group; after :data:`CLAIM_IDLE` seconds any other
consumer claims it (``XAUTOCLAIM``) and delivers it again, with the same
``webhook-id``: Standard Webhooks receivers deduplicate on it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis

from tasks.notify.events import Event
from tasks.notify.schedule import TryLater
from tasks.redis import keys, scripts

log = logging.getLogger("payq.notify")

# Seconds an entry may stay delivered-to but unsettled before another consumer takes its consumer
# for dead and delivers it again: well above the longest delivery (connect 3 s + read 5 s).
CLAIM_IDLE = 15.0
# A consumer with nothing pending, silent this long, is a worker gone for good: dropped from the group.
FORGET_CONSUMER_AFTER = 3600.0


@dataclass(frozen=True)
class Entry:
    """One event as the outbox holds it: its stream entry's id, the event's id (``webhook-id``), body, job, failed deliveries, outcome time."""

    entry_id: str
    event_id: str
    body: str
    job_id: str
    failed: int
    at: float

    @classmethod
    def of(cls, entry_id: str, fields: dict[str, str]) -> Entry:
        """An entry from the stream."""
        return cls(entry_id, fields["id"], fields["body"], fields.get("job", ""), int(fields.get("attempts", 0)),
                   float(fields.get("at", 0)))

    def retry_json(self, failed: int) -> str:
        """The entry as the retry set keeps it, with ``failed`` failed deliveries on its record."""
        return json.dumps({"id": self.event_id, "body": self.body, "job": self.job_id, "attempts": failed, "at": self.at})


def event_args(event: Event | None) -> list[Any]:
    """The six ARGV of an outcome's notification for the scripts that append one (``lua/lib/outbox.lua`` ``append_event``)."""
    if event is None:
        return ["", "", "", "", "", ""]
    return [keys.OUTBOX, keys.OUTBOX_PENDING, keys.job(event.job_id), event.id, event.body, event.job_id]


class Outbox:
    """Reading, settling, retrying and measuring the outbox, for one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._add = scripts.register(client, "outbox_add")
        self._settle = scripts.register(client, "outbox_settle")
        self._due = scripts.register(client, "outbox_due")

    def append(self, event: Event, now: float, client: Any = None) -> None:
        """Append ``event`` unless its job's record says it was told already (``client``: a pipeline to queue it in)."""
        self._add(keys=[], args=[*event_args(event), now], client=client or self._redis)

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing; it starts at the stream's first entry."""
        try:
            self._redis.xgroup_create(keys.OUTBOX, keys.OUTBOX_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` new entries for ``consumer``, waiting up to ``block_ms`` for the first."""
        try:
            reply = self._redis.xreadgroup(keys.OUTBOX_GROUP, consumer, {keys.OUTBOX: ">"}, count=count, block=block_ms or None)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # the stream was deleted (FLUSHDB, by hand): start again
            return []
        return _entries(reply)

    def claim(self, consumer: str, count: int, idle: float = CLAIM_IDLE) -> list[Entry]:
        """Up to ``count`` entries left pending longer than ``idle`` seconds by a consumer taken for dead, now ``consumer``'s."""
        try:
            reply = self._redis.xautoclaim(keys.OUTBOX, keys.OUTBOX_GROUP, consumer, int(idle * 1000), "0-0", count=count)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return []
        return [Entry.of(entry_id, fields) for entry_id, fields in reply[1] if fields]

    def forget_gone_consumers(self, idle: float = FORGET_CONSUMER_AFTER) -> int:
        """Drop consumers with nothing pending, silent for ``idle`` seconds (workers gone for good); returns how many."""
        gone = [c["name"] for c in self._redis.xinfo_consumers(keys.OUTBOX, keys.OUTBOX_GROUP)
                if int(c["pending"]) == 0 and int(c["idle"]) > idle * 1000]
        for name in gone:
            self._redis.xgroup_delconsumer(keys.OUTBOX, keys.OUTBOX_GROUP, name)
        return len(gone)

    def settle(self, entries: list[Entry], later: Mapping[str, TryLater] | None = None) -> int:
        """Acknowledge ``entries`` and forget them, or keep those in ``later`` (entry id -> when, and its record) for later; one script.

        Returns how many were still pending: one a consumer that claimed it meanwhile settled first is left as that one settled it.
        """
        keys_, args = self._settle_call(entries, later or {})
        return int(self._settle(keys=keys_, args=args)) if entries else 0

    @staticmethod
    def _settle_call(entries: list[Entry], later: Mapping[str, TryLater]) -> tuple[list[str], list[Any]]:
        args: list[Any] = [keys.OUTBOX_GROUP]
        for entry in entries:
            step = later.get(entry.entry_id)
            args += [entry.entry_id, entry.event_id, "" if step is None else step.until, "" if step is None else entry.retry_json(step.failed)]
        return [keys.OUTBOX, keys.OUTBOX_PENDING, keys.OUTBOX_RETRY], args

    def settle_and_read(self, entries: list[Entry], later: Mapping[str, TryLater], consumer: str, count: int) -> list[Entry]:
        """:meth:`settle` ``entries``, then :meth:`read` up to ``count`` new ones without waiting: one round trip for both."""
        if not entries:
            return self.read(consumer, count, 0)
        pipe = self._redis.pipeline(transaction=False)
        # EVALSHA itself: a pipeline given the Script object would first ask SCRIPT EXISTS, a round trip of its own
        keys_, args = self._settle_call(entries, later)
        pipe.evalsha(self._settle.sha, len(keys_), *keys_, *args)
        pipe.xreadgroup(keys.OUTBOX_GROUP, consumer, {keys.OUTBOX: ">"}, count=count)
        settled, reply = pipe.execute(raise_on_error=False)
        if isinstance(reply, redis.ResponseError) and "NOGROUP" in str(reply):
            self.ensure_group()  # the stream was deleted (FLUSHDB, by hand): start again
            reply = []
        elif isinstance(reply, Exception):
            raise reply
        # the entries read are this consumer's now, whatever became of the settle: returned, never dropped
        read = _entries(reply)
        if isinstance(settled, redis.exceptions.NoScriptError):  # Redis restarted or its scripts were flushed: load it
            self.settle(entries, later)
        elif isinstance(settled, Exception):
            log.warning("outbox: settling %d entries failed (%s); they stay pending, to be claimed and delivered again", len(entries),
                        settled)
        return read

    def move_due(self, now: float, limit: int) -> int:
        """Put up to ``limit`` retries that are due back on the stream; returns how many."""
        return int(self._due(keys=[keys.OUTBOX_RETRY, keys.OUTBOX], args=[now, limit]))


def _entries(reply: Any) -> list[Entry]:
    """The entries of an ``XREADGROUP`` reply (none: nothing new); an entry deleted meanwhile comes back without fields and is left out."""
    return [Entry.of(entry_id, fields) for _, items in cast(list[Any], reply or []) for entry_id, fields in items if fields]


def depth_calls(pipe: Any) -> None:
    """Queue the outbox's two figures on ``pipe``: how many events are pending, and the oldest's outcome time (see :func:`depth_of`)."""
    pipe.zcard(keys.OUTBOX_PENDING)
    pipe.zrange(keys.OUTBOX_PENDING, 0, 0, withscores=True)


def depth_of(count: Any, first: Any) -> tuple[int, float | None]:
    """The replies of :func:`depth_calls`: (events pending, when the oldest one's outcome was recorded, or None)."""
    return int(count), float(first[0][1]) if first else None
