"""The intake's answers to ``/v1`` requests, counted by HTTP status: ``payq_intake_answers_total``.

Each answer is counted in this process's memory (a dict increment: one
``payq serve`` answers about 2,000 single POSTs a second on a core, and a Redis
write per answer would cost each request a second round trip) and added to
``payq:intake:answers`` every :data:`FLUSH_EVERY` seconds in one transaction,
so ``payq metrics`` reads every ``payq serve``'s answers from one place. While
Redis is away the counts wait here and are added once it answers again: the
503s of an outage are counted too, late. A process that is killed loses at
most its last few seconds of counts; a clean stop adds them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import redis
import redis.asyncio as aioredis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks.redis import keys

FLUSH_EVERY = 5.0  # seconds; an alert looks at minutes, so a few seconds late costs it nothing
COUNTED_PREFIX = "/v1/"  # the store backends' requests; not the console's pages, nor a load balancer's /readyz


class AnswerCounts:
    """Answers by HTTP status not yet added to Redis. Touched only from the event loop's thread, so no lock."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, status: int) -> None:
        """Count one answer."""
        self._counts[str(status)] += 1

    async def flush(self, client: aioredis.Redis) -> None:
        """Add the counts to Redis in one transaction; on a Redis error keep them for the next flush."""
        taken, self._counts = self._counts, Counter()
        if not taken:
            return
        pipe = client.pipeline(transaction=True)
        for status, count in taken.items():
            pipe.hincrby(keys.INTAKE_ANSWERS, status, count)
        try:
            await pipe.execute()
        except redis.RedisError:
            # not logged: /readyz and every refused request already say Redis is away
            self._counts.update(taken)


class CountAnswers:
    """ASGI middleware: counts the status of every answer to a path under ``/v1/`` (500 for one that raised before answering)."""

    def __init__(self, app: ASGIApp, counts: AnswerCounts) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(COUNTED_PREFIX):
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            self.counts.add(status)


async def flush_every(counts: AnswerCounts, client: aioredis.Redis, every: float = FLUSH_EVERY) -> None:
    """Flush ``counts`` every ``every`` seconds until cancelled, then once more (a clean stop keeps its counts)."""
    try:
        while True:
            await asyncio.sleep(every)
            await counts.flush(client)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(counts.flush(client), 2.0)


def start(counts: AnswerCounts, client: aioredis.Redis) -> asyncio.Task[Any]:
    """The flushing task, for the application's lifespan."""
    return asyncio.get_running_loop().create_task(flush_every(counts, client), name="payq-intake-answers")
