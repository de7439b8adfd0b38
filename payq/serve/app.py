"""The ASGI application of ``payq serve``: settings and an asynchronous Redis client shared by every request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from redis.asyncio.sentinel import Sentinel
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE
from starlette.exceptions import HTTPException

from config.settings import Settings
from payapi.models import describe_errors
from payq.serve import answers, apidocs, console, intake
from payq.serve.edge import AnswerHeaders, ForwardedHeaders
from payq.serve.jobs import IntakeJobs
from payq.serve.problems import from_http_error, invalid_request, item, not_ready
from payq.serve.schemas import component_schemas, problems
from tasks import tracing
from tasks.redis.connection import CLIENT_OPTIONS, sentinel_options
from tasks.redis.replicas import ReplicaState

log = logging.getLogger(__name__)
READY_TIMEOUT = 2.0  # seconds /readyz waits for Redis's answer: a load balancer's check is a few seconds long


def connect(settings: Settings) -> aioredis.Redis:
    """An asynchronous client for ``settings.redis_url`` (or its Sentinels' primary), as impatient as the producer's with an unreachable Redis.

    Its connections pack commands with hiredis, as the synchronous client's
    do: redis-py's asynchronous connection packs every argument in Python,
    and a batch's enqueue script has twelve per job.
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
        flusher = answers.start(counts, app.state.redis)
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await app.state.redis.aclose()

    app = FastAPI(
        title="payq", summary="Durable payment jobs for checkout-free stores: enqueue, follow, get told the outcome.",
        version="1", lifespan=lifespan,
        # FastAPI's own pages load their scripts from a CDN and ask no login: payq serves its own (payq.serve.apidocs)
        docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,
        # FastAPI's own OpenTelemetry server span is the intake's (tasks/tracing.py), for the store backends' /v1 requests only: no
        # span per health check or console page, nor its metrics and logs (payq's metrics are Prometheus's; its logs, its own)
        telemetry={"tracing": tracing.enabled(), "operation_spans": False, "metrics": False, "logs": False,
                   "exclude": lambda scope: not str(scope.get("path", "")).startswith("/v1/")},
    )
    app.state.settings = settings
    counts = answers.AnswerCounts()  # payq_intake_answers_total: every /v1 answer's status
    app.add_middleware(answers.CountAnswers, counts=counts)

    # no token: a load balancer or a supervisor asks, and nothing of any store is in the answer
    no_token: dict[str, Any] = {"security": []}

    @app.get("/healthz", tags=["health"], operation_id="getLiveness", summary="Liveness: the process serves", openapi_extra=no_token,
             responses={200: {"content": {"application/json": {"schema": {"type": "object", "properties": {"ok": {"const": True}}}}}}})
    async def healthz() -> dict[str, bool]:
        """Liveness: the process serves (Redis is not asked). Restart the process only if this fails."""
        return {"ok": True}

    @app.get("/readyz", tags=["health"], operation_id="getReadiness", summary="Readiness: Redis answers, /v1 can be served", openapi_extra=no_token,
             responses={200: {"description": "Ready; `degraded`: no Redis replica holds the jobs (PAYQ_REDIS_MIN_REPLICAS 0 allows it).",
                              "content": {"application/json": {"schema": {"type": "object", "properties": {
                                  "ready": {"const": True}, "degraded": {"type": "boolean"}, "replicasInSync": {"type": "integer"},
                                  "warning": {"type": "string", "description": "Redis is near its maxmemory (80% or more): when it is"
                                              " full every enqueue is refused 503."}}}}}},
                        **problems({503: "Redis does not answer, or fewer replicas are in sync than PAYQ_REDIS_MIN_REPLICAS:"
                                         " take this instance out of rotation."})})
    async def readyz() -> Response:
        """Readiness, for load balancers: 200 while Redis answers and takes enqueues, 503 (a problem) while every /v1 request would be refused.

        200 says ``degraded`` while no replica is in sync where one is expected
        (payq goes on with the primary alone); 503 also while fewer replicas are
        in sync than ``PAYQ_REDIS_MIN_REPLICAS`` (enqueues are refused).
        """
        try:
            seen = await asyncio.wait_for(app.state.intake_jobs.replicas(), READY_TIMEOUT)
        except (redis.ConnectionError, redis.TimeoutError, TimeoutError) as exc:
            log.warning("/readyz: not ready: %s", exc)
            return not_ready(f"Redis does not answer within {READY_TIMEOUT:g} s; every /v1 request would be refused 503").response()
        if seen.state is ReplicaState.REFUSING:
            return not_ready(f"{seen.describe()}: below that floor every enqueue would be refused 503").response()
        answer: dict[str, Any] = {"ready": True, "degraded": seen.state is ReplicaState.DEGRADED, "replicasInSync": seen.in_sync}
        try:
            warning = await asyncio.wait_for(app.state.intake_jobs.memory_warning(), READY_TIMEOUT)
        except (redis.RedisError, TimeoutError):
            warning = None  # Redis answered just now: a reading missed is no reason to take the instance out of rotation
        if warning is not None:
            # still ready (reads and a full Redis's 503s are served), but an operator must act before enqueues fail
            log.warning("/readyz: %s", warning)
            answer["warning"] = warning
        return JSONResponse(answer)

    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException) -> Response:
        # every refusal is a problem, the framework's own too (no such route, a method a route does not take)
        return from_http_error(exc.status_code, exc.detail, request.method, request.url.path, exc.headers).response()

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> Response:
        # a parameter the framework validated, in a body's words, and never its value (the framework's own answer echoes it)
        return invalid_request([item(problem) for problem in describe_errors(exc.errors(), skip=1)]).response()

    app.include_router(intake.router)
    app.include_router(apidocs.router)
    console.install(app)
    app.add_middleware(AnswerHeaders)
    app.add_middleware(ForwardedHeaders, trusted=settings.serve_forwarded_allow_ips)  # added last: runs first
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The OpenAPI document, made once: FastAPI's, with ``servers`` from the settings and the bodies the routes read themselves as named schemas."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes,
                          servers=[{"url": public_url(settings), "description": "payq serve"}])
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(component_schemas())
        for schema in schemas.values():
            _drop_field_titles(schema)
        for operation in (op for item in doc["paths"].values() for op in item.values()):
            for parameter in operation.get("parameters", []):
                parameter["schema"].pop("title", None)
        app.openapi_schema = doc
    return app.openapi_schema


def public_url(settings: Settings) -> str:
    """Where store backends reach the intake: ``PAYQ_SERVE_PUBLIC_URL``, else ``/``, relative to wherever the document was read.

    Not the address payq listens on: behind a proxy, or on ``0.0.0.0`` in a
    container, that is not an address a store backend can use.
    """
    return settings.serve_public_url or "/"


def _drop_field_titles(schema: dict[str, Any]) -> None:
    # pydantic titles each field after its name ("Storeid"): noise a generated client turns into type names
    for field in schema.get("properties", {}).values():
        field.pop("title", None)
        for variant in field.get("anyOf", []) + field.get("oneOf", []):
            variant.pop("title", None)

