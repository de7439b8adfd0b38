"""The ASGI application of ``payq serve``: settings and an asynchronous Redis client shared by every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Request

from config.settings import Settings
from workers.serve import console, intake


def connect(settings: Settings) -> aioredis.Redis:
    """An asynchronous client for ``settings.redis_url``, as impatient as the producer's with an unreachable Redis."""
    return aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=2.0, socket_timeout=10.0, health_check_interval=30, decode_responses=True,
    )


def create_app(settings: Settings) -> FastAPI:
    """The application for ``settings``; its Redis client is made at start-up and closed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = connect(settings)
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
    app.include_router(console.router)
    return app


def settings_of(request: Request) -> Settings:
    """The settings the application was built with."""
    settings: Settings = request.app.state.settings
    return settings


def redis_of(request: Request) -> aioredis.Redis:
    """The application's asynchronous Redis client."""
    client: aioredis.Redis = request.app.state.redis
    return client
