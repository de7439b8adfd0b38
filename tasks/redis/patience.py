"""One patience for waiting out Redis (a restart, a failover, a replica catching up): a deadline, made once, passed explicitly.

Whoever talks to Redis for one piece of work makes one :class:`Patience` for
it (a delivery in a worker, a request in ``payq serve``, a ``payq`` command)
and hands it to every step: each step that meets a Redis fault is tried again
after a short wait (0.1 s, doubling to 1 s) until the deadline, and then the
fault is raised. No step keeps a loop or a deadline of its own, so patience
never nests: a worker whose API call came back extends the same deadline to
record the outcome (:meth:`Patience.extended`), it does not start another.

The clock and the sleep are injected, so a test can pin both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

import redis

T = TypeVar("T")
# What waiting can cure: Redis did not answer (down, restarting, a primary moving). A command Redis
# received and refused is not one of them.
REDIS_FAULTS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
FIRST_WAIT = 0.1  # seconds before the first retry: a Sentinel's new primary answers within a few of them
LONGEST_WAIT = 1.0  # seconds between retries at most: a step goes on within a second of Redis's return
Faults = tuple[type[BaseException], ...]
OnFault = Callable[[BaseException], None]


def waits(first: float = FIRST_WAIT, longest: float = LONGEST_WAIT) -> Iterator[float]:
    """The waits between tries: ``first``, doubling, at most ``longest``."""
    wait = first
    while True:
        yield wait
        wait = min(wait * 2, longest)


@dataclass(frozen=True)
class Patience:
    """Until when a piece of work waits out Redis; :meth:`call` and :meth:`call_async` try a step until then."""

    deadline: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @classmethod
    def of(cls, seconds: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Patience:
        """A patience of ``seconds`` from now on ``clock``."""
        return cls(clock() + seconds, clock, sleep)

    def extended(self, seconds: float) -> Patience:
        """The same patience, ``seconds`` longer, counted from its deadline or from now, whichever is later."""
        return replace(self, deadline=max(self.deadline, self.clock()) + seconds)

    def left(self) -> float:
        """Seconds until the deadline (negative once it passed)."""
        return self.deadline - self.clock()

    def call(self, step: Callable[[], T], *, faults: Faults = REDIS_FAULTS, on_fault: OnFault | None = None) -> T:
        """``step()``; on one of ``faults`` (``on_fault`` is told each), try again after a wait, until the deadline; then raise it."""
        pause = waits()
        while True:
            try:
                return step()
            except faults as exc:
                self.sleep(self._wait_after(exc, next(pause), on_fault))

    async def call_async(self, step: Callable[[], Awaitable[T]], *, faults: Faults = REDIS_FAULTS, on_fault: OnFault | None = None) -> T:
        """:meth:`call` for a coroutine step, waiting without blocking the event loop."""
        pause = waits()
        while True:
            try:
                return await step()
            except faults as exc:
                await self.asleep(self._wait_after(exc, next(pause), on_fault))

    def _wait_after(self, exc: BaseException, wait: float, on_fault: OnFault | None) -> float:
        """How long to wait after ``exc``: ``wait``; re-raises ``exc`` if that would pass the deadline."""
        if on_fault is not None:
            on_fault(exc)
        if self.clock() + wait > self.deadline:
            raise exc
        return wait
