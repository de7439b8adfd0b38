"""Lifting an endpoint's pause and what its 429s taught, by hand, and the log of who did it.

A 429 pauses an endpoint for every worker (``payq:pause:<op>``) and cuts its
pace to what the API accepted (``payq:pace:<op>``), growing back over an hour
or more (:mod:`tasks.pacing.rules`). An operator who knows the limit is gone (the
API's owners raised it; the 429s came from a proxy since fixed) lifts both
(``payq pace reset OP``, or the console's overview):

- the pause and the learned state (with the GCRA turn it spaced, and the
  stores' clocks of :mod:`tasks.pacing.fairness`) are deleted in one MULTI, so every worker calls at the configured pace (or unpaced)
  within half a second (:class:`tasks.pacing.pacer.Pacer` re-reads it that often);
- the jobs deferred only for that endpoint (its pause, their turn at its
  pace, a 429's Retry-After: :func:`waits_for_the_endpoint`) are
  made due now and give up the turn they held, so the mover publishes them at
  once instead of at the old pause's end (``lua/release_deferred.lua``; a job
  that moved on meanwhile is left as it is);
- the lift is recorded in the endpoint log (``payq:endpoints:log``, the
  latest :data:`LOG_KEPT`): a pause belongs to an endpoint, not to one job,
  so it is told there (the console's overview shows it) rather than in the
  history of every job it touched.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis

from payapi.operations import Operation
from tasks.jobs.deferral import Deferral
from tasks.redis import keys, scripts
from tasks.states import DeferCause

LOG_KEPT = 50
_BATCH = 500  # deferred jobs read, and released, per round trip
_ENDPOINT_CAUSES = frozenset({DeferCause.PAUSED, DeferCause.PACED})  # they made no call: they wait for the endpoint only


@dataclass(frozen=True)
class Lifted:
    """One lift: which endpoint, by whom, when; the pause it ended and the pace it forgot (None: there was none); jobs made due."""

    operation: Operation
    by: str
    at: float
    paused_until: float | None
    learned_accepted: float | None
    released: int

    def describe(self) -> str:
        """What was done, as an operator reads it."""
        pause = f"ended its pause (it ran until {_iso(self.paused_until)})" if self.paused_until is not None else "no pause to end"
        pace = (f"forgot its learned pace ({self.learned_accepted:.3g} calls/s accepted before its last 429)"
                if self.learned_accepted is not None else "no learned pace to forget")
        jobs = f"{self.released} deferred job{'' if self.released == 1 else 's'} made due now"
        return f"{self.operation.value}: {pause}; {pace}; {jobs}"

    def to_json(self) -> str:
        """The endpoint log's entry."""
        return json.dumps(asdict(self))


def lifted_from(text: str) -> Lifted:
    """An endpoint log entry read back."""
    data = json.loads(text)
    return Lifted(**{**data, "operation": Operation(data["operation"])})


class EndpointLog:
    """Lifts an endpoint's pause and learned pace, and keeps the log of lifts."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._release = scripts.register(client, "release_deferred")

    def lift(self, operation: Operation, by: str, now: float) -> Lifted:
        """End ``operation``'s pause and forget its learned pace; release the jobs deferred for them; log it."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(keys.pause(operation))
        pipe.hget(keys.pace(operation), "accepted")
        # the stores' clocks go too: set after the pause, they would hold the stores' jobs until its old end
        pipe.delete(keys.pause(operation), keys.pace(operation), keys.fair_clocks(operation), keys.fair_waiting(operation))
        paused, accepted, _ = pipe.execute()
        until = float(paused) if paused is not None and float(paused) > now else None
        lifted = Lifted(operation, by, now, until, float(accepted) if accepted else None, self._release_deferred(operation, now))
        pipe = self._redis.pipeline(transaction=True)
        pipe.lpush(keys.ENDPOINT_LOG, lifted.to_json())
        pipe.ltrim(keys.ENDPOINT_LOG, 0, LOG_KEPT - 1)
        pipe.execute()
        return lifted

    def recent(self, limit: int = 10) -> list[Lifted]:
        """The latest lifts, newest first."""
        return [lifted_from(item) for item in cast(list[str], self._redis.lrange(keys.ENDPOINT_LOG, 0, limit - 1))]

    def _release_deferred(self, operation: Operation, now: float) -> int:
        """Make due now every job deferred for ``operation``'s pause or pace (read a batch at a time, then released in batches)."""
        waiting: list[tuple[str, str]] = []
        start = 0
        while True:
            ids = cast(list[str], self._redis.zrangebyscore(keys.DEFERRED, f"({now}", "+inf", start=start, num=_BATCH))
            if not ids:
                break
            start += len(ids)
            pipe = self._redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(keys.job(job_id), "op", "defer")
            for job_id, (op, defer) in zip(ids, pipe.execute(), strict=True):
                if op == operation.value and defer and waits_for_the_endpoint(defer):
                    waiting.append((job_id, defer))
        released = 0
        for first in range(0, len(waiting), _BATCH):
            args: list[Any] = [now, operation.value]
            for job_id, defer in waiting[first : first + _BATCH]:
                args += [job_id, keys.job(job_id), defer]
            released += int(self._release(keys=[keys.DEFERRED], args=args))
        return released


def waits_for_the_endpoint(defer: str) -> bool:
    """Whether a job's ``defer`` says it waits for its endpoint's limit only: its pause, its turn at the pace, or a 429's Retry-After.

    A job waiting out a 5xx's backoff or a 503's Retry-After waits for the
    API to recover, which lifting the pause does not change: it is left.
    """
    try:
        deferral = Deferral.from_json(defer)
    except (ValueError, KeyError, TypeError):
        return False
    throttled = deferral.cause is DeferCause.RETRY_AFTER and deferral.failure is not None and deferral.failure.status == 429
    return deferral.cause in _ENDPOINT_CAUSES or throttled


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
