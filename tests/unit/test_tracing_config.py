"""When tracing is on (the standard OTEL_* variables), and which traceparents payq carries: pure tables."""

from __future__ import annotations

import pytest

from tasks.tracing import configured, valid_traceparent

ENDPOINT = "http://collector:4318"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(("environ", "on"), [
    ({}, False),                                                                       # the default: off
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ENDPOINT}/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
    ({"OTEL_SERVICE_NAME": "payq"}, False),                                            # naming the service turns nothing on
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "false"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "otlp"}, True),
])
def test_tracing_is_on_only_with_an_otlp_endpoint_and_the_sdk_not_disabled(environ: dict[str, str], on: bool) -> None:
    assert configured(environ) is on


@pytest.mark.parametrize(("header", "kept"), [
    (TRACEPARENT, TRACEPARENT),
    (TRACEPARENT.upper(), TRACEPARENT),
    (f" {TRACEPARENT} ", TRACEPARENT),
    (None, ""),
    ("", ""),
    ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""),  # an all-zero trace id is invalid
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""),  # so is an all-zero parent id
    ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""),  # a version payq does not know
    (TRACEPARENT + "-extra", ""),
    (TRACEPARENT[:-1] + "\r\nX-Injected: 1", ""),                     # never a header line of its own
    ("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", ""),
])
def test_only_a_w3c_traceparent_is_carried(header: str | None, kept: str) -> None:
    assert valid_traceparent(header) == kept
