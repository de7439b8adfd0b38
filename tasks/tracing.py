"""One OpenTelemetry trace per payment: off unless the standard ``OTEL_*`` environment turns it on.

An OTLP endpoint (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``) turns tracing on in the processes that set it
up (the worker and ``payq serve``: :func:`setup`); ``OTEL_SDK_DISABLED=true``
or ``OTEL_TRACES_EXPORTER=none`` keep it off. Everything else the SDK reads
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, the exporter's headers and
timeouts, ``OTEL_BSP_*``, ``OTEL_TRACES_SAMPLER``) is the SDK's as usual.

Off, nothing of the SDK is imported and every helper here is a test of one
global: a drain pays nothing for it. A job's trace context is its W3C
``traceparent``, fixed at enqueue (the enqueue span's, or the store backend's
own when tracing is off here) and kept in the job's record and message, so
every delivery, retry, deferral and replay of the job, and the report a
capture chains, join the same trace.

Span attributes name the job (:data:`JOB_ID`, :data:`STORE_ID`,
:data:`TRIP_ID`, :data:`OPERATION`), never an amount, a token or a secret.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

# the attributes every payq span may carry (never the job's kwargs: they hold amounts)
JOB_ID = "payq.job.id"
STORE_ID = "payq.store.id"
TRIP_ID = "payq.trip.id"
OPERATION = "payq.operation"
ATTEMPT = "payq.attempt"
ENDING = "payq.ending"
OUTCOME = "payq.outcome"
JOB_COUNT = "payq.job.count"
DEFER_CAUSE = "payq.defer.cause"
DEFER_SECONDS = "payq.defer.seconds"
EVENT_ID = "payq.event.id"
HTTP_STATUS = "http.response.status_code"

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
HEADER = "traceparent"

# W3C Trace Context, version 00: anything else is ignored, as the spec asks (never stored, never an error)
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


class Kind(StrEnum):
    """A span's kind (OpenTelemetry's ``SpanKind`` by name, so callers need not import the SDK)."""

    SERVER = "SERVER"
    CLIENT = "CLIENT"
    PRODUCER = "PRODUCER"
    CONSUMER = "CONSUMER"
    INTERNAL = "INTERNAL"


def configured(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` turns tracing on: an OTLP endpoint, and neither the SDK nor the traces exporter switched off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def valid_traceparent(value: str | None) -> str:
    """``value`` if it is a W3C ``traceparent`` payq can carry, else ''."""
    if not value:
        return ""
    value = value.strip().lower()
    return value if len(value) == 55 and _TRACEPARENT.fullmatch(value) else ""


# payq's own tracer once :func:`setup` turned tracing on; None: off (the one global every helper tests)
_tracer: Any = None
# the trace context carried while tracing is off here: the store backend's traceparent, so the job keeps it
_carried: ContextVar[str] = ContextVar("payq_traceparent", default="")


def setup(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on in this process if ``environ`` (the process's) says so; whether it is on.

    Called once per process that runs jobs or takes requests, after any fork
    (the exporter's thread does not survive one). ``service`` is the
    ``service.name`` unless ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` name one.
    """
    global _tracer
    if _tracer is not None:
        return True
    env = os.environ if environ is None else environ
    if not configured(env):
        return False
    # imported only now: a process with tracing off never loads the SDK
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("payq")
    return True


def enabled() -> bool:
    """Whether this process traces (:func:`setup` turned it on)."""
    return _tracer is not None


def flush(timeout_seconds: float = 5.0) -> None:
    """Export what is buffered now (a worker process about to exit); nothing when off."""
    if _tracer is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force = getattr(provider, "force_flush", None)
    if force is not None:
        force(int(timeout_seconds * 1000))


@contextmanager
def span(name: str, kind: Kind = Kind.INTERNAL, parent: str = "", attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A span named ``name``, current for the block: a child of ``parent`` (a ``traceparent``) if given, else of the current span.

    Yields the span (to add attributes, set its status), or None when tracing
    is off: then ``parent`` is only carried (:func:`current_traceparent` gives it inside the block).
    """
    if _tracer is None:
        with carried(parent):
            yield None
        return
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({HEADER: parent}) if parent else None
    with _tracer.start_as_current_span(name, context=context, kind=SpanKind[kind.value], attributes=dict(attributes or {})) as current:
        yield current


@contextmanager
def carried(traceparent: str) -> Iterator[None]:
    """While tracing is off here, carry ``traceparent`` (a store backend's) through the block, for the jobs enqueued in it."""
    if not traceparent:
        yield
        return
    token = _carried.set(traceparent)
    try:
        yield
    finally:
        _carried.reset(token)


def current_traceparent() -> str:
    """The ``traceparent`` of the current span ('' if there is none): what a job enqueued now keeps.

    With tracing off here: the one :func:`span` carries, else the calling
    application's own current span, if it traces with OpenTelemetry (the
    Python producer inside a store backend's process), else ''.
    """
    if _tracer is None:
        carried = _carried.get()
        if carried or "opentelemetry.trace" not in sys.modules:
            return carried
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get(HEADER, "")


def inject(headers: dict[str, str]) -> None:
    """Add the current span's ``traceparent`` to ``headers`` (an outgoing request); nothing when off."""
    if _tracer is None:
        return
    traceparent = current_traceparent()
    if traceparent:
        headers[HEADER] = traceparent


def job_attributes(job_id: str, operation: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What a span says of a job: its id, operation, store and trip (nothing else of its kwargs)."""
    return {JOB_ID: job_id, OPERATION: operation, STORE_ID: str(kwargs.get("storeId", "")), TRIP_ID: str(kwargs.get("shoppingTripId", ""))}


def set_attributes(current: Any, attributes: Mapping[str, Any]) -> None:
    """Add ``attributes`` to ``current`` (a span from :func:`span`; None when off)."""
    if current is not None:
        current.set_attributes(dict(attributes))


def set_error(current: Any, description: str) -> None:
    """Mark ``current`` failed with ``description`` (never a secret: a failure's kind and status)."""
    if current is not None:
        from opentelemetry.trace import Status, StatusCode

        current.set_status(Status(StatusCode.ERROR, description))
