"""Each endpoint's pace, shared by every worker through Redis.

The pace itself is :mod:`tasks.pacing.rules` (pure); here is where its inputs live:
the configured limits (``PAYQ_RATE_LIMITS``), what the API's 429s taught
(``payq:pace:<operation>``, so a new worker starts at the learned pace), and
the successful calls of the last seconds, counted by the tenth of a second
they were sent in, from which a 429's lesson is measured once the calls in
flight with it have landed (:func:`~tasks.pacing.rules.lesson_at`). The turns themselves are handed out by
BEGIN (``tasks/store/lua/begin.lua``), atomically with the claim of an attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from payapi.errors import ConfigurationError
from payapi.operations import API_OPERATIONS, Operation
from tasks.pacing.rules import MEASURE_WINDOW, MIN_MEASURED_SPAN, REFRESH, Learned, cut, measure, pace_at, same_burst
from tasks.redis import keys, scripts
from tasks.redis.keys import SUCCESSES_KEPT


@dataclass(frozen=True)
class Claim:
    """The lesson of a 429's burst, claimed by the worker that met it first: what was known when it came."""

    learned: Learned | None
    pace: float | None


def configured_limits(limits: Mapping[str, float]) -> dict[Operation, float]:
    """``PAYQ_RATE_LIMITS`` by operation; :class:`ConfigurationError` naming an operation that does not exist."""
    unknown = sorted(name for name in limits if name not in {op.value for op in API_OPERATIONS})
    if unknown:
        choices = ", ".join(op.value for op in API_OPERATIONS)
        raise ConfigurationError(f"PAYQ_RATE_LIMITS names no operation {', '.join(map(repr, unknown))}: use {choices}")
    return {Operation(name): rate for name, rate in limits.items()}


class Pacer:
    """The pace of each endpoint now, and what to learn from a 429; one per process, shared by its threads."""

    def __init__(self, client: redis.Redis, configured: Mapping[Operation, float], clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self.configured = dict(configured)
        self._clock = clock
        self._cut = scripts.register(client, "pace_cut")
        self._learn = scripts.register(client, "pace_learn")
        self._pause = scripts.register(client, "pause")
        self._lock = threading.Lock()
        self._cache: dict[Operation, tuple[float, Learned | None]] = {}

    def pace(self, operation: Operation, now: float) -> float | None:
        """Calls per second ``operation`` may take at ``now`` (None: unpaced), from state at most half a second old."""
        read_at, learned = self._cache.get(operation, (float("-inf"), None))
        if self._clock() - read_at > REFRESH:
            learned = self.learned(operation)
        return pace_at(learned, self.configured.get(operation), now)

    def learned(self, operation: Operation) -> Learned | None:
        """What the endpoint's 429s taught, read now."""
        accepted, since, climb = self._redis.hmget(keys.pace(operation), "accepted", "since", "climb")
        learned = Learned(float(accepted), float(since), float(climb)) if accepted and since and climb else None
        with self._lock:
            self._cache[operation] = (self._clock(), learned)
        return learned

    def throttled(self, operation: Operation, now: float, resume_at: float) -> Claim | None:
        """A 429 at ``now`` paused ``operation`` until ``resume_at``: claim its lesson, or None (an earlier 429 of its burst has).

        The claimant measures it with :meth:`learn` once the calls in flight have
        landed (:func:`~tasks.pacing.rules.lesson_at`); the script checks the
        burst again as it claims, for workers throttled at once.
        """
        learned = self.learned(operation)
        if same_burst(learned, now):
            return None
        pace = pace_at(learned, self.configured.get(operation), now)
        if not self._cut(keys=[keys.pace(operation)], args=[now, repr(resume_at)]):
            return None
        return Claim(learned, pace)

    def learn(self, operation: Operation, claim: Claim, sent_at: float, retry_after: float | None, resume_at: float) -> Learned | None:
        """Learn from the claimed 429 of the call sent at ``sent_at``: the pace after ``resume_at`` is cut to what the API accepted."""
        measured = measure(self._successes(operation, sent_at), sent_at)
        lesson = cut(claim.learned, claim.pace, measured, retry_after, resume_at)
        if lesson is not None:
            self._learn(keys=[keys.pace(operation)], args=[repr(resume_at), repr(lesson.accepted), repr(lesson.since), repr(lesson.climb)])
        return self.learned(operation)

    def _successes(self, operation: Operation, sent_at: float) -> list[tuple[int, int]]:
        last = int(sent_at * 10)
        tenths = list(range(last - int(MEASURE_WINDOW * 10), last + int(MIN_MEASURED_SPAN * 10) + 1))
        counts = self._redis.mget([keys.successes(operation, t) for t in tenths])
        return [(t, int(n)) for t, n in zip(tenths, counts, strict=True) if n]

    def pause(self, operation: Operation, until: float, now: float) -> bool:
        """Pause ``operation``'s endpoint for every worker until ``until``; True if this extended the pause."""
        ttl_ms = max(1, int((until - now) * 1000) + 1000)
        return bool(self._pause(keys=[keys.pause(operation)], args=[until, ttl_ms]))

    def pauses(self, operations: Iterable[Operation]) -> dict[Operation, float]:
        """Endpoint pauses on record: operation -> until (some may have ended already)."""
        ops = list(operations)
        values = self._redis.mget([keys.pause(op) for op in ops])
        return {op: float(v) for op, v in zip(ops, values, strict=True) if v is not None}


def count_call(pipe: Any, operation: Operation, status: int | None, sent_at: float) -> None:
    """Add to ``pipe`` the counting of one API call sent at ``sent_at``: its status for ``payq_api_calls_total``, a success for the pace's measure."""
    pipe.hincrby(keys.API_CALLS, f"{operation.value}:{status if status is not None else 'none'}", 1)
    if status is not None and 200 <= status < 300:
        bucket = keys.successes(operation, int(sent_at * 10))
        pipe.incr(bucket)
        pipe.expire(bucket, SUCCESSES_KEPT)
