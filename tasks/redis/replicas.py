"""Writes that survive a failover: Redis ``WAIT`` for ``PAYQ_REDIS_MIN_REPLICAS`` replicas before payq reports one.

Replication is asynchronous: a primary killed a moment after it answered may
take that write with it, and Sentinel promotes a replica that never saw it.
So before payq says something happened (an enqueue's answer, a claim before its
API call, an outcome before its message is acknowledged) it asks the primary to
wait until that many replicas hold everything written so far.

``WAIT`` covers what its own connection wrote, and a pooled client's next
command may take another connection; so the wait is preceded, on the same
connection, by a write of its own (``INCR`` of a probe key). The replication
stream is one ordered log: a replica that has the probe has every write the
primary made before it, including the one to confirm. With no replicas asked
for (the default without Sentinel) nothing is sent at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from payapi.errors import NotReplicated
from tasks.redis import keys

log = logging.getLogger("payq.replicas")
T = TypeVar("T")
# Redis faults a write is tried again after: the primary moved (Sentinel's pool turns a demoted
# primary's READONLY into a ConnectionError), or too few replicas confirmed it.
FAULTS = (redis.ConnectionError, redis.TimeoutError, NotReplicated)


@dataclass(frozen=True)
class Replicas:
    """How many replicas must confirm a write, and for how long one ``WAIT`` waits."""

    wanted: int
    timeout: float

    def _shortfall(self, acked: int) -> NotReplicated | None:
        if acked >= self.wanted:
            return None
        return NotReplicated(
            f"only {acked} of {self.wanted} Redis replica(s) confirmed the write within {self.timeout:g} s"
            " (PAYQ_REDIS_MIN_REPLICAS); it is not yet safe from a failover"
        )

    def confirm(self, client: redis.Redis) -> None:
        """Return once ``wanted`` replicas hold every write made so far; :class:`NotReplicated` if they do not in time."""
        if not self.wanted:
            return
        pipe = client.pipeline(transaction=False)
        pipe.incr(keys.REPLICA_PROBE)
        pipe.execute_command("WAIT", self.wanted, int(self.timeout * 1000))  # type: ignore[no-untyped-call]
        _, acked = pipe.execute()
        if (error := self._shortfall(int(acked))) is not None:
            raise error

    async def confirm_async(self, client: aioredis.Redis) -> None:
        """:meth:`confirm` on an asynchronous client."""
        if not self.wanted:
            return
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(keys.REPLICA_PROBE)
            pipe.execute_command("WAIT", self.wanted, int(self.timeout * 1000))
            _, acked = await pipe.execute()
        if (error := self._shortfall(int(acked))) is not None:
            raise error


class Patient:
    """A store whose calls outlast a failover: each is tried again on a Redis fault until ``deadline``; some are confirmed too.

    A worker wraps its stores in this for one delivery (``workers.execution``):
    a claim or an outcome that meets a moving primary is written again on the
    new one, not given up (giving up after the API call would send it twice).
    ``confirmed`` names the calls a worker acts on or reports: each returns only
    once :class:`Replicas` confirms it. A write repeated after a connection
    fault is repeated whole, because the new primary may never have seen the
    first; one only short of replicas is waited for again, not repeated.
    """

    def __init__(self, store: Any, client: redis.Redis, replicas: Replicas, deadline: float, confirmed: frozenset[str],
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._client = client
        self._replicas = replicas
        self._deadline = deadline
        self._confirmed = confirmed

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._patiently(lambda: attribute(*args, **kwargs), name in self._confirmed, name)

        return call

    def _patiently(self, write: Callable[[], T], confirm: bool, name: str) -> T:
        delay = 0.1
        result: tuple[T] | None = None  # the write's result, once written on the primary now in charge
        while True:
            try:
                if result is None:
                    result = (write(),)
                if confirm:
                    self._replicas.confirm(self._client)
                return result[0]
            except FAULTS as exc:
                if not isinstance(exc, NotReplicated):
                    result = None  # the primary may have changed: write again
                if self._clock() + delay > self._deadline:
                    raise
                log.warning("%s: %s; trying again", name, exc)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
