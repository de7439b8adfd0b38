"""Job records in Redis, and the atomic steps that move a job through its states.

A job record (``payq:job:<id>``, a hash) is also the job's idempotency key: a
job id that has a record is never published again by ``enqueue``. States:

    queued -> running -> succeeded
                      -> deferred -> queued (moved back when due)
                      -> dead (in the dead-letter store) -> queued (replayed)

Each step that must not be half-done is one Lua script; Redis runs a script
whole or not at all, and the append-only file logs it as one write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from payapi.outcomes import Operation
from tasks.messages import QUEUES, build_message, build_sent_event, sent_event_channel
from workers import keys

# Record and publish one job unless its id has a record; shared by the scripts that publish.
_ENQUEUE_FUNCTION = """
local function enqueue(job, queue, active, id, message, op, kwargs, now, ttl, channel, event)
  if redis.call('EXISTS', job) == 1 then return 0 end
  redis.call('HSET', job, 'op', op, 'kwargs', kwargs, 'state', 'queued', 'attempts', 0, 'enqueued_at', now, 'updated_at', now)
  redis.call('EXPIRE', job, ttl)
  redis.call('LPUSH', queue, message)
  redis.call('ZADD', active, now, id)
  redis.call('PUBLISH', channel, event)
  return 1
end
"""

# KEYS: job, queue, active set; ARGV: message, op, kwargs, now, ttl, events channel, sent event, id
_ENQUEUE = _ENQUEUE_FUNCTION + """
return enqueue(KEYS[1], KEYS[2], KEYS[3], ARGV[8], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
"""

# KEYS: capture job, active set, report job, feedback queue;
# ARGV: capture id, now, settled_at, result, report id, message, kwargs, ttl, events channel, sent event.
# A capture's success in one round trip: its settle time (kept from the first
# success: the report's id derives from it), its chained report, its record.
# Returns the settle time on record; a different one than offered means an
# earlier delivery settled it, and the caller builds that report instead.
_FINISH_CAPTURE = _ENQUEUE_FUNCTION + """
redis.call('HSETNX', KEYS[1], 'settled_at', ARGV[3])
local settled = redis.call('HGET', KEYS[1], 'settled_at')
if settled ~= ARGV[3] then return settled end
enqueue(KEYS[3], KEYS[4], KEYS[2], ARGV[5], ARGV[6], 'feedback', ARGV[7], ARGV[2], ARGV[8], ARGV[9], ARGV[10])
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'outcome', 'HTTP 200', 'result', ARGV[4], 'updated_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'deferred_until', 'reason')
redis.call('ZREM', KEYS[2], ARGV[1])
return settled
"""

# KEYS: job, deferred set, pause, active set; ARGV: id, now, op, kwargs, ttl, worker, delivery tag, lease
_BEGIN = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  -- published without a record (it expired, or someone used apply_async): adopt it
  redis.call('HSET', KEYS[1], 'op', ARGV[3], 'kwargs', ARGV[4], 'attempts', 0, 'enqueued_at', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  state = 'queued'
end
if state == 'succeeded' or state == 'dead' then return {state, '0', ''} end
local settled = redis.call('HGET', KEYS[1], 'settled_at')
if settled then return {'settled', '0', settled} end
if state == 'deferred' and redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {'deferred', '0', ''} end
if state == 'running' then
  -- another copy of the message (re-published as lost) while a delivery still holds the job: that one
  -- finishes it. The same message back (kombu's restore after a worker died, a requeue) may run.
  local holder = redis.call('HMGET', KEYS[1], 'delivery', 'last_attempt_at')
  if holder[1] and holder[1] ~= ARGV[7] and tonumber(holder[2] or 0) + tonumber(ARGV[8]) > tonumber(ARGV[2]) then
    return {'busy', '0', ''}
  end
end
local pause = redis.call('GET', KEYS[3])
if pause and tonumber(pause) > tonumber(ARGV[2]) then return {'paused', '0', pause} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSETNX', KEYS[1], 'first_attempt_at', ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'running', 'updated_at', ARGV[2], 'last_attempt_at', ARGV[2], 'worker', ARGV[6],
           'delivery', ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return {'run', tostring(attempts), ''}
"""

# KEYS: deferred set; ARGV: now, then (id, job key, queue, message) per job
# A job no longer 'deferred' was taken further by a second copy of its message
# (it succeeded, was dead-lettered, is running, or was queued again): publishing
# it would run it once more, e.g. send a payment-status report twice.
_MOVE = """
local taken = 0
for i = 2, #ARGV, 4 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    taken = taken + 1
    if redis.call('HGET', ARGV[i + 1], 'state') == 'deferred' then
      -- RPUSH: kombu pops from the right, so a due job runs next instead of
      -- waiting behind the backlog it was deferred out of (it is late already)
      redis.call('RPUSH', ARGV[i + 2], ARGV[i + 3])
      redis.call('HSET', ARGV[i + 1], 'state', 'queued', 'updated_at', ARGV[1])
      redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
    end
  end
end
return taken
"""

# KEYS: active set; ARGV: now, cutoff, then (id, job key, queue, message) per job.
# Re-publish a job untouched since the cutoff whose message must have been lost
# between kombu's pop and its unacked record: one still running, or one queued
# while its queue is empty. A queued job behind a backlog still has its message
# there; a copy would run it twice. Finished jobs just leave the set.
_REVIVE = """
local revived = 0
for i = 3, #ARGV, 4 do
  local since = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if since and tonumber(since) <= tonumber(ARGV[2]) then
    local state = redis.call('HGET', ARGV[i + 1], 'state')
    if state == 'queued' and redis.call('LLEN', ARGV[i + 2]) > 0 then
      -- still waiting its turn: look again on the next sweep
    elseif state == 'queued' or state == 'running' then
      redis.call('RPUSH', ARGV[i + 2], ARGV[i + 3])
      redis.call('HSET', ARGV[i + 1], 'state', 'queued', 'updated_at', ARGV[1])
      redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
      revived = revived + 1
    else
      redis.call('ZREM', KEYS[1], ARGV[i])
    end
  end
end
return revived
"""

# KEYS: pause; ARGV: until, ttl ms. Only ever extends: a shorter Retry-After never ends a longer pause.
_PAUSE = """
local current = redis.call('GET', KEYS[1])
if (not current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class NewJob:
    """A validated job ready to publish: ``kwargs`` is its JSON form with the wire field names."""

    operation: Operation
    job_id: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Begin:
    """What a worker found when it picked a job up.

    ``verdict`` is ``run`` (call the API; ``attempts`` counts this call),
    ``paused`` (the endpoint is paused until ``until``), ``settled`` (a capture
    that already succeeded at ``until``), or ``succeeded`` / ``dead`` /
    ``deferred`` / ``busy`` (a stale duplicate delivery, or a copy of one
    another delivery is running: nothing to do).
    """

    verdict: str
    attempts: int
    until: float | None


class JobStore:
    """Job records, publishing, the deferred set and endpoint pauses: the Redis side of a job's life."""

    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self._redis = client
        self._ttl = retention_seconds
        self._events = sent_event_channel(int(client.connection_pool.connection_kwargs.get("db", 0)))
        self._enqueue = client.register_script(_ENQUEUE)
        self._begin = client.register_script(_BEGIN)
        self._move = client.register_script(_MOVE)
        self._pause = client.register_script(_PAUSE)
        self._revive = client.register_script(_REVIVE)
        self._finish_capture = client.register_script(_FINISH_CAPTURE)

    # --- publishing -------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], now: float | None = None) -> list[bool]:
        """Record and publish each job unless its id already has a record; True where it was published.

        All scripts go out in one pipeline; each is atomic on its own, so a
        failure part-way leaves every job either fully published or untouched.
        """
        now = now if now is not None else time.time()
        pipe = self._redis.pipeline(transaction=False)
        for job in jobs:
            kwargs_json = json.dumps(job.kwargs)
            self._enqueue(
                keys=[keys.job(job.job_id), QUEUES[job.operation], keys.ACTIVE],
                args=[build_message(job.operation, job.job_id, job.kwargs), job.operation, kwargs_json, now, self._ttl,
                      self._events, build_sent_event(job.operation, job.job_id, job.kwargs, now), job.job_id],
                client=pipe,
            )
        return [bool(r) for r in pipe.execute()]

    # --- a worker's steps ---------------------------------------------------

    def begin(
        self, job_id: str, operation: Operation, kwargs: dict[str, Any], worker: str, now: float, delivery: str, lease: float,
    ) -> Begin:
        """Claim an attempt, unless the job is finished, parked, its endpoint paused, or another delivery holds it.

        ``delivery`` names this message (its delivery tag); a claim is held for
        ``lease`` seconds against other messages for the same job, while the
        same message redelivered may always take it over.
        """
        verdict, attempts, until = self._begin(
            keys=[keys.job(job_id), keys.DEFERRED, keys.pause(operation), keys.ACTIVE],
            args=[job_id, now, operation, json.dumps(kwargs), self._ttl, worker, delivery, lease],
        )
        return Begin(verdict, int(attempts), float(until) if until else None)

    def defer(self, job_id: str, due: float, reason: str, outcome: str | None, now: float) -> None:
        """Park the job in the deferred set until ``due``; the mover publishes it again then."""
        fields: dict[Any, Any] = {"state": "deferred", "deferred_until": due, "reason": reason, "updated_at": now}
        if outcome is not None:
            fields["outcome"] = outcome
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.job(job_id), mapping=fields)
        pipe.zadd(keys.DEFERRED, {job_id: due})
        pipe.zrem(keys.ACTIVE, job_id)
        pipe.execute()

    def finish_capture(self, job_id: str, settled_at: int, result: dict[str, Any], report: NewJob, now: float) -> int:
        """Settle a capture at ``settled_at``, publish its ``report`` and mark it succeeded, in one script.

        Returns the settle time on record: ``settled_at``, or an earlier one, in
        which case nothing was written and the report for that time is the one
        to publish (call again with it).
        """
        return int(self._finish_capture(
            keys=[keys.job(job_id), keys.ACTIVE, keys.job(report.job_id), QUEUES["feedback"]],
            args=[job_id, now, settled_at, json.dumps(result), report.job_id,
                  build_message("feedback", report.job_id, report.kwargs), json.dumps(report.kwargs), self._ttl,
                  self._events, build_sent_event("feedback", report.job_id, report.kwargs, now)],
        ))

    def succeed(self, job_id: str, outcome: str, result: dict[str, Any], now: float) -> None:
        """Mark the job succeeded with its result (e.g. a refund's reconciliationId)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.job(job_id), mapping={
            "state": "succeeded", "outcome": outcome, "result": json.dumps(result), "updated_at": now,
        })
        pipe.hdel(keys.job(job_id), "deferred_until", "reason")
        pipe.zrem(keys.ACTIVE, job_id)
        pipe.execute()

    def pause(self, operation: Operation, until: float, now: float) -> bool:
        """Pause ``operation``'s endpoint for every worker until ``until``; True if this extended the pause."""
        ttl_ms = max(1, int((until - now) * 1000) + 1000)
        return bool(self._pause(keys=[keys.pause(operation)], args=[until, ttl_ms]))

    # --- the deferred set ---------------------------------------------------

    def move_due(self, now: float, limit: int) -> int:
        """Publish up to ``limit`` deferred jobs that are due; returns how many left the set.

        Safe with any number of movers: a job is published by whichever script
        removes it from the set, and only that one. A job whose record is no
        longer ``deferred`` leaves the set without being published.
        """
        due = cast(list[str], self._redis.zrangebyscore(keys.DEFERRED, "-inf", now, start=0, num=limit))
        args = _script_args(self._load(due, keys.DEFERRED))
        return int(self._move(keys=[keys.DEFERRED, keys.ACTIVE], args=[now, *args])) if args else 0

    def revive_lost(self, now: float, older_than: float, limit: int) -> int:
        """Re-publish jobs whose message was lost, untouched for ``older_than`` seconds; returns how many.

        A job outlives its visibility timeout and time limit running only if its
        worker's message vanished, and queued with its queue empty only if its
        message did (a worker killed between kombu's pop and its unacked
        record). A queued job behind a backlog keeps its message and is left
        alone: a copy would run it twice.
        """
        cutoff = now - older_than
        stale = cast(list[str], self._redis.zrangebyscore(keys.ACTIVE, "-inf", cutoff, start=0, num=limit))
        jobs = self._load(stale, keys.ACTIVE)
        backlogged = {op for op in {job.operation for job in jobs if job.state == "queued"} if self._redis.llen(QUEUES[op])}
        # the script looks at each queue again: it may have emptied meanwhile
        args = _script_args([job for job in jobs if not (job.state == "queued" and job.operation in backlogged)])
        return int(self._revive(keys=[keys.ACTIVE], args=[now, cutoff, *args])) if args else 0

    def _load(self, job_ids: list[str], watched: str) -> list[_Stored]:
        """The records of ``job_ids``; a job whose record is gone leaves the ``watched`` set.

        A record vanishes only by retention (days) or by hand: nothing is left to rebuild its job from.
        """
        if not job_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "op", "kwargs", "state")
        jobs = [_Stored(job_id, *fields) for job_id, fields in zip(job_ids, pipe.execute(), strict=True)]
        if orphans := [job.job_id for job in jobs if job.operation is None]:
            self._redis.zrem(watched, *orphans)
        return [job for job in jobs if job.operation is not None]

    # --- reading ------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, str] | None:
        """The job's record as stored, or None."""
        record = cast(dict[str, str], self._redis.hgetall(keys.job(job_id)))
        return record or None

    def pauses(self, operations: Iterable[Operation]) -> dict[str, float]:
        """Active endpoint pauses: operation -> until."""
        ops = list(operations)
        values = self._redis.mget([keys.pause(op) for op in ops])
        return {op: float(v) for op, v in zip(ops, values, strict=True) if v is not None}


@dataclass(frozen=True)
class _Stored:
    """What republishing a job needs from its record."""

    job_id: str
    operation: Operation
    kwargs_json: str
    state: str | None


def _script_args(jobs: Iterable[_Stored]) -> list[Any]:
    """(id, job key, queue, message) per job, flattened, as the move and revive scripts take them."""
    args: list[Any] = []
    for job in jobs:
        message = build_message(job.operation, job.job_id, json.loads(job.kwargs_json))
        args += [job.job_id, keys.job(job.job_id), QUEUES[job.operation], message]
    return args
