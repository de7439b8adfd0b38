"""The dead-letter store: jobs that will not succeed without an operator.

One entry per job id (``payq:dlq``, a hash of JSON entries, indexed by time in
``payq:dlq:index``). Entries leave only by ``replay`` or ``purge``, or when
older than the retention. Replay is one Lua script: the entry is removed in
the same atomic step that publishes the job, so a failed publish keeps the
entry and two operators replaying at once replay it once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import redis
from pydantic import BaseModel, Field

from payapi.outcomes import Operation
from tasks.messages import QUEUES, build_message
from workers import keys

REASONS = ("permanent", "retries-exhausted", "feedback-rejected", "invalid-job", "internal-error")

# KEYS: dlq hash, dlq index, queue, job record, replay history
# ARGV: id, message, now, history entry, kwargs json, operation, ttl seconds
_REPLAY = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[4], 'op', ARGV[6], 'kwargs', ARGV[5], 'state', 'queued', 'attempts', 0, 'updated_at', ARGV[3])
redis.call('HDEL', KEYS[4], 'first_attempt_at', 'deferred_until', 'reason')
redis.call('HINCRBY', KEYS[4], 'replays', 1)
redis.call('EXPIRE', KEYS[4], ARGV[7])
redis.call('RPUSH', KEYS[5], ARGV[4])
redis.call('EXPIRE', KEYS[5], ARGV[7])
return 1
"""


class DeadLetter(BaseModel):
    """Everything known about a dead-lettered job; ``kwargs`` carries its idempotency key."""

    id: str
    operation: Operation
    task: str
    kwargs: dict[str, Any]
    reason: str
    status: int | None = None
    error: str
    attempts: int
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    dead_at: float
    worker: str | None = None
    replays: int = 0
    history: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def store_id(self) -> str:
        """The entry's storeId."""
        return str(self.kwargs.get("storeId", ""))

    @property
    def trip_id(self) -> str:
        """The entry's shoppingTripId."""
        return str(self.kwargs.get("shoppingTripId", ""))


class DeadLetterStore:
    """add / list / get / replay / purge / trim over the dead-letter entries in Redis."""

    def __init__(self, client: redis.Redis, job_retention_seconds: int, retention_seconds: int) -> None:
        self._redis = client
        self._job_ttl = job_retention_seconds
        self._retention = retention_seconds
        self._replay = client.register_script(_REPLAY)

    def add(self, entry: DeadLetter) -> None:
        """Store ``entry`` and mark its job dead, in one transaction (written before the message is acknowledged)."""
        history = [json.loads(h) for h in self._redis.lrange(keys.replays(entry.id), 0, -1)]
        entry = entry.model_copy(update={"history": history, "replays": len(history)})
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.DEAD_LETTERS, entry.id, entry.model_dump_json())
        pipe.zadd(keys.DEAD_LETTER_INDEX, {entry.id: entry.dead_at})
        pipe.hset(keys.job(entry.id), mapping={
            "state": "dead", "reason": entry.reason, "outcome": entry.error, "updated_at": entry.dead_at,
        })
        pipe.execute()

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
        ids = self._redis.zrevrangebyscore(
            keys.DEAD_LETTER_INDEX, older_than if older_than is not None else "+inf", since if since is not None else "-inf"
        )
        if not ids:
            return []
        entries = [DeadLetter.model_validate_json(raw) for raw in self._redis.hmget(keys.DEAD_LETTERS, ids) if raw]
        return [
            e for e in entries
            if (operation is None or e.operation == operation)
            and (store_id is None or e.store_id == store_id)
            and (reason is None or e.reason == reason)
        ]

    def replay(self, entry_id: str, by: str = "operator") -> bool:
        """Publish the job again (same id and idempotency key, attempts reset); False if the entry is gone."""
        entry = self.get(entry_id)
        if entry is None:
            return False
        now = time.time()
        history = json.dumps({"replayed_at": now, "by": by, "reason": entry.reason, "error": entry.error, "attempts": entry.attempts})
        return bool(self._replay(
            keys=[keys.DEAD_LETTERS, keys.DEAD_LETTER_INDEX, QUEUES[entry.operation], keys.job(entry_id), keys.replays(entry_id)],
            args=[entry_id, build_message(entry.operation, entry_id, entry.kwargs), now, history,
                  json.dumps(entry.kwargs), entry.operation, self._job_ttl],
        ))

    def purge(self, entry_ids: Iterable[str]) -> int:
        """Delete these entries; returns how many existed."""
        ids = list(entry_ids)
        if not ids:
            return 0
        pipe = self._redis.pipeline(transaction=True)
        pipe.hdel(keys.DEAD_LETTERS, *ids)
        pipe.zrem(keys.DEAD_LETTER_INDEX, *ids)
        return int(pipe.execute()[0])

    def trim(self, now: float) -> int:
        """Delete entries dead-lettered longer ago than the retention; returns how many."""
        old = self._redis.zrangebyscore(keys.DEAD_LETTER_INDEX, "-inf", now - self._retention)
        return self.purge(old)

    def count_by_reason(self) -> dict[str, int]:
        """How many entries there are for each reason."""
        counts: dict[str, int] = {}
        for raw in self._redis.hvals(keys.DEAD_LETTERS):
            reason = json.loads(raw)["reason"]
            counts[reason] = counts.get(reason, 0) + 1
        return counts
