"""The ASGI application of ``payq serve``: settings and an asynchronous Redis client shared by every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from redis.asyncio.sentinel import Sentinel
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

from config.settings import Settings
from payq.serve import console, intake
from payq.serve.jobs import IntakeJobs
from tasks.redis_conn import CLIENT_OPTIONS, sentinel_options


def connect(settings: Settings) -> aioredis.Redis:
    """An asynchronous client for ``settings.redis_url`` (or its Sentinels' primary), as impatient as the producer's with an unreachable Redis.

    Its connections pack commands with hiredis, as the synchronous client's
    do: redis-py's asynchronous connection packs every argument in Python,
    and a batch's enqueue script has eleven per job.
    """
    client: aioredis.Redis
    if settings.uses_sentinel:
        # the primary the Sentinels name, asked again on every new connection: after a failover, the new one
        sentinels, sentinel_kwargs, primary = sentinel_options(settings)
        manager = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        client = manager.master_for(str(settings.redis_sentinel_master), **primary, **CLIENT_OPTIONS)
    else:
        client = aioredis.Redis.from_url(settings.redis_url, **CLIENT_OPTIONS)
    pool = client.connection_pool
    if HIREDIS_AVAILABLE:
        # the URL's scheme chose the class (TCP, TLS or a Unix socket): keep it, change only how it packs
        pool.connection_class = type(f"Hiredis{pool.connection_class.__name__}", (_HiredisPacking, pool.connection_class), {})
    return client


class _HiredisPacking:
    """Packs a command in C (``hiredis.pack_command``, as redis-py's synchronous connection does) instead of in Python."""

    _serializer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = self._serializer.pack(*args)
        return packed


def create_app(settings: Settings) -> FastAPI:
    """The application for ``settings``; its Redis client is made at start-up and closed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = connect(settings)
        # one for every request: its script's SHA and the events channel are worked out once, not per request
        app.state.intake_jobs = IntakeJobs(app.state.redis, settings)
        try:
            yield
        finally:
            await app.state.redis.aclose()

    app = FastAPI(
        title="payq", summary="Durable payment jobs for checkout-free stores: enqueue, follow, get told the outcome.",
        version="1", lifespan=lifespan,
    )
    app.state.settings = settings

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, bool]:
        """For load balancers: the process serves (Redis is not asked; a 503 from the API says when it is down)."""
        return {"ok": True}

    app.include_router(intake.router)
    console.install(app)
    return app
