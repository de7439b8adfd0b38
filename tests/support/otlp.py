"""A real OTLP/HTTP trace receiver for the tests: an HTTP server in a thread decoding each export request with the protocol's own classes.

What an OpenTelemetry collector's ``otlphttp`` receiver does for traces, and no
more: ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` (protobuf,
gzip or not), answered with an empty ``ExportTraceServiceResponse``. Every
span received is kept as a :class:`ReceivedSpan`.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as exported: ids in hex, its name and kind (``SPAN_KIND_SERVER``, ...), attributes, status code, and its resource's attributes."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    status: str
    resource: dict[str, Any]
    start_ns: int

    @property
    def service(self) -> str:
        """The ``service.name`` of the process that made it."""
        return str(self.resource.get("service.name", ""))


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return getattr(value, which) if which else None


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items if isinstance(kv, KeyValue)}


class OtlpReceiver:
    """Keeps every span POSTed to ``url + "/v1/traces"``; ``requests`` counts the export requests."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._keep(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()

    def _keep(self, request: ExportTraceServiceRequest) -> None:
        found: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(ReceivedSpan(
                        span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(), span.name,
                        Span.SpanKind.Name(span.kind), _attributes(span.attributes), span.status.StatusCode.Name(span.status.code),
                        resource, span.start_time_unix_nano,
                    ))
        with self._lock:
            self.requests += 1
            self.spans.extend(found)

    def received(self) -> list[ReceivedSpan]:
        """The spans so far, in the order they started."""
        with self._lock:
            return sorted(self.spans, key=lambda s: s.start_ns)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def otlp_receiving() -> Iterator[OtlpReceiver]:
    """An :class:`OtlpReceiver` for the block."""
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def otel_env(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    """The standard OTEL_* environment that sends a process's spans to ``receiver``, exported within 0.1 s of ending."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100", **extra}
