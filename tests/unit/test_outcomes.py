"""The outcome classifier: what every API answer, and every failure to get one, means for a job.

Each behaviour is a table with one row per case, so a new status code or body
shape is one more line. The clock is pinned, which makes every delay exact;
the delay is the API's own (clamping it is the retry decision's business).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus

import pytest
from urllib3 import HTTPHeaderDict, HTTPSConnectionPool
from urllib3 import exceptions as u3
from urllib3.connection import HTTPSConnection
from urllib3.util import parse_url

from payapi.models import FeedbackResponse, RefundResponse
from payapi.operations import Operation
from payapi.outcomes import (
    Failure,
    FailureKind,
    Outcome,
    Permanent,
    Rejected,
    RetryAfter,
    Success,
    Transient,
    classify,
    classify_exception,
    classify_receiver,
)

NOW_DT = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
NOW = NOW_DT.timestamp()
# A reason ends up in a log line and a dead-letter entry: it must stay a line, whatever the body.
REASON_LIMIT = 400
HUGE = 1_000_000


def respond(operation: str, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Outcome:
    """Classify one response at the pinned time."""
    return classify(Operation(operation), status, headers or {}, body, now=NOW)


def described(outcome: Outcome) -> str:
    """The failure's line as a person reads it."""
    assert not isinstance(outcome, Success), outcome
    return outcome.failure.describe()


def json_body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def http_date(seconds_from_now: float) -> str:
    """An IMF-fixdate (``Wed, 01 Jan 2025 12:02:00 GMT``) relative to the pinned clock."""
    return format_datetime(NOW_DT + timedelta(seconds=seconds_from_now), usegmt=True)


# --- 2xx: success, when the body carries what the job needs -------------------------------------

SUCCESS_ROWS = [
    pytest.param("capture", 200, b"", None, id="capture-200-empty-body"),
    pytest.param("cancel", 200, b"", None, id="cancel-200-empty-body"),
    pytest.param("capture", 200, json_body(status="OK", chargeId="c-1"), None, id="capture-200-json-body-ignored"),
    pytest.param("cancel", 200, json_body(anything=[1, 2, 3]), None, id="cancel-200-json-body-ignored"),
    pytest.param("capture", 200, b"<html>OK</html>", None, id="capture-200-non-json-body-ignored"),
    pytest.param("capture", 204, b"", None, id="capture-204-no-content"),
    pytest.param(
        "refund", 200, json_body(reconciliationId="R3c0nc1l3"), RefundResponse(reconciliationId="R3c0nc1l3"),
        id="refund-200-valid-reconciliationId",
    ),
    pytest.param(
        "refund", 200, json_body(reconciliationId="a" * 64), RefundResponse(reconciliationId="a" * 64),
        id="refund-200-reconciliationId-at-64-char-limit",
    ),
    pytest.param(
        "refund", 200, json_body(reconciliationId="abc123", processor="visa", settled={"at": 1}),
        RefundResponse(reconciliationId="abc123"),
        id="refund-200-unknown-attributes-ignored",
    ),
    pytest.param(
        "feedback", 200, json_body(status="Accepted", reasonCode="OK"), FeedbackResponse(status="Accepted", reasonCode="OK"),
        id="feedback-200-accepted-with-reasonCode",
    ),
    pytest.param(
        "feedback", 200, json_body(status="Accepted"), FeedbackResponse(status="Accepted"),
        id="feedback-200-accepted-without-reasonCode",
    ),
    pytest.param(
        "feedback", 200, json_body(status="Accepted", reasonCode=None, riskScore=0.2),
        FeedbackResponse(status="Accepted"),
        id="feedback-200-unknown-attributes-ignored",
    ),
]


@pytest.mark.parametrize(("operation", "status", "body", "parsed"), SUCCESS_ROWS)
def test_2xx_is_success_with_the_parsed_body(
    operation: str, status: int, body: bytes, parsed: RefundResponse | FeedbackResponse | None
) -> None:
    assert respond(operation, status, body) == Success(parsed, status)


@pytest.mark.parametrize(
    ("body", "reason_code"),
    [
        pytest.param(json_body(status="Rejected", reasonCode="OUTSTANDING_BALANCE"), "OUTSTANDING_BALANCE", id="rejected-with-reasonCode"),
        pytest.param(json_body(status="Rejected"), None, id="rejected-without-reasonCode"),
        pytest.param(json_body(status="Rejected", reasonCode="DEBT", riskScore=0.9), "DEBT", id="rejected-unknown-attributes-ignored"),
    ],
)
def test_a_report_answered_rejected_is_a_rejection_not_a_success(body: bytes, reason_code: str | None) -> None:
    assert respond("feedback", 200, body) == Rejected(Failure(FailureKind.REJECTED, 200, reason_code))


UNUSABLE_200_ROWS = [
    pytest.param("refund", b"{not json", ["refund", "{not json"], id="refund-200-invalid-json"),
    pytest.param("feedback", b"<html>OK</html>", ["feedback", "<html>OK</html>"], id="feedback-200-invalid-json"),
    pytest.param("refund", b"", ["refund"], id="refund-200-empty-body"),
    pytest.param("refund", json_body(status="OK"), ["refund", "reconciliationId"], id="refund-200-without-reconciliationId"),
    pytest.param("refund", json_body(reconciliationId="a" * 65), ["reconciliationId"], id="refund-200-reconciliationId-too-long"),
    pytest.param(
        "refund", json_body(reconciliationId="abc-123"), ["reconciliationId"], id="refund-200-reconciliationId-not-alphanumeric"
    ),
    pytest.param("refund", json_body(reconciliationId=12345), ["reconciliationId"], id="refund-200-reconciliationId-not-a-string"),
    pytest.param("refund", b"[]", ["refund"], id="refund-200-json-array"),
    pytest.param("feedback", json_body(reasonCode="X"), ["feedback", "status"], id="feedback-200-without-status"),
    pytest.param("feedback", json_body(status="Pending"), ["feedback", "status"], id="feedback-200-unknown-status"),
]


@pytest.mark.parametrize(("operation", "body", "named"), UNUSABLE_200_ROWS)
def test_200_without_the_body_the_job_needs_is_transient(operation: str, body: bytes, named: list[str]) -> None:
    outcome = respond(operation, 200, body)

    assert isinstance(outcome, Transient)
    assert (outcome.failure.kind, outcome.failure.status) == (FailureKind.UNUSABLE_BODY, 200)
    assert "HTTP 200" in described(outcome)
    for text in named:
        assert text in described(outcome)


# --- 4xx other than 429: permanent --------------------------------------------------------------

BAD_REQUEST_ROWS = [
    pytest.param(
        {}, json_body(errorMsg="UnknownShoppingTrip"), "UnknownShoppingTrip", "UnknownShoppingTrip",
        id="400-UnknownShoppingTrip-via-errorMsg",
    ),
    pytest.param(
        {"x-amzn-ErrorType": "UnknownShoppingTrip:http://internal.amazon.com/coral/com.amazon.payments/"},
        json_body(errorMsg="Shopping trip t-1 was not found"), "UnknownShoppingTrip", "Shopping trip t-1 was not found",
        id="400-UnknownShoppingTrip-via-x-amzn-ErrorType-header",
    ),
    pytest.param(
        {"X-AMZN-ERRORTYPE": "UnknownShoppingTrip"}, b"", "UnknownShoppingTrip", None,
        id="400-UnknownShoppingTrip-header-name-any-case",
    ),
    pytest.param(
        {}, json_body(errorMsg="BadRequestException"), "BadRequestException", "BadRequestException",
        id="400-BadRequestException-via-errorMsg",
    ),
    pytest.param(
        {"x-amzn-ErrorType": "BadRequestException"}, json_body(errorMsg="storeId is invalid"), "BadRequestException",
        "storeId is invalid",
        id="400-BadRequestException-via-header",
    ),
    pytest.param({}, json_body(errorMsg="amount is missing"), "BadRequestException", "amount is missing", id="400-other-errorMsg"),
    pytest.param({}, b"", "BadRequestException", None, id="400-empty-body"),
    pytest.param({}, b"<html>Bad Request</html>", "BadRequestException", None, id="400-html-body"),
]


@pytest.mark.parametrize(("headers", "body", "error_type", "error_msg"), BAD_REQUEST_ROWS)
def test_400_is_permanent_and_names_the_documented_error(
    headers: dict[str, str], body: bytes, error_type: str, error_msg: str | None
) -> None:
    outcome = respond("capture", 400, body, headers)

    assert isinstance(outcome, Permanent)
    assert (outcome.failure.kind, outcome.failure.status) == (FailureKind.REFUSED, 400)
    assert (outcome.failure.error_type, outcome.failure.error_msg) == (error_type, error_msg)
    assert described(outcome).startswith("HTTP 400 Bad Request: ")
    assert error_type in described(outcome)


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(401, id="401-unauthorized"),
        pytest.param(403, id="403-forbidden"),
        pytest.param(404, id="404-not-found"),
        pytest.param(409, id="409-conflict"),
        pytest.param(422, id="422-unprocessable"),
    ],
)
def test_other_4xx_is_permanent_and_its_reason_names_status_and_errorMsg(status: int) -> None:
    outcome = respond("refund", status, json_body(errorMsg="The security token included in the request is expired"))

    phrase = HTTPStatus(status).phrase
    assert outcome == Permanent(Failure(FailureKind.REFUSED, status, error_msg="The security token included in the request is expired"))
    assert described(outcome) == f"HTTP {status} {phrase}: The security token included in the request is expired"


def test_4xx_without_errorMsg_names_the_body_instead() -> None:
    outcome = respond("capture", 403, b"<html>Forbidden by WAF</html>")

    assert outcome == Permanent(Failure(FailureKind.REFUSED, 403, detail="<html>Forbidden by WAF</html>"))
    assert described(outcome) == "HTTP 403 Forbidden: <html>Forbidden by WAF</html>"


# --- 429 and 503: come back when the API says ---------------------------------------------------

RETRY_AFTER_ROWS = [
    pytest.param(429, {"Retry-After": "600"}, b"", 600.0, id="429-documented-600-seconds"),
    pytest.param(429, {"Retry-After": "30"}, b"", 30.0, id="429-seconds"),
    pytest.param(429, {"retry-after": "30"}, b"", 30.0, id="429-header-name-any-case"),
    pytest.param(429, {"Retry-After": http_date(120)}, b"", 120.0, id="429-http-date-from-injected-clock"),
    pytest.param(429, {"Retry-After": http_date(-3600)}, b"", 0.0, id="429-http-date-in-the-past-means-now"),
    pytest.param(429, {"Retry-After": "86400"}, b"", 86400.0, id="429-larger-than-any-cap-kept-as-sent"),
    pytest.param(429, {"Retry-After": http_date(86400)}, b"", 86400.0, id="429-http-date-a-day-away"),
    pytest.param(429, {"Retry-After": "0"}, b"", 0.0, id="429-zero-kept-as-sent"),
    pytest.param(503, {}, json_body(errorMsg="down", retryAfter="30"), 30.0, id="503-body-retryAfter"),
    pytest.param(503, {"Retry-After": "45"}, json_body(errorMsg="down"), 45.0, id="503-header"),
    pytest.param(503, {"Retry-After": "45"}, json_body(errorMsg="down", retryAfter="30"), 45.0, id="503-both-header-larger-wins"),
    pytest.param(503, {"Retry-After": "10"}, json_body(errorMsg="down", retryAfter="60"), 60.0, id="503-both-body-larger-wins"),
    pytest.param(
        503, {"Retry-After": "20"}, json_body(errorMsg="down", retryAfter="soon"), 20.0, id="503-unreadable-body-usable-header"
    ),
    pytest.param(503, {}, json_body(errorMsg="down", retryAfter="7200"), 7200.0, id="503-body-large-kept-as-sent"),
    pytest.param(503, {}, json_body(errorMsg="down", retryAfter="0"), 0.0, id="503-body-zero-kept-as-sent"),
]


@pytest.mark.parametrize(("status", "headers", "body", "seconds"), RETRY_AFTER_ROWS)
def test_429_and_503_with_a_usable_delay_retry_after_it(status: int, headers: dict[str, str], body: bytes, seconds: float) -> None:
    outcome = respond("capture", status, body, headers)

    assert isinstance(outcome, RetryAfter)
    assert outcome.delay == seconds
    assert outcome.failure.status == status
    assert outcome.throttled == (status == 429)
    assert described(outcome).startswith(f"HTTP {status} {HTTPStatus(status).phrase}")


def test_503_failure_keeps_the_errorMsg() -> None:
    outcome = respond("refund", 503, json_body(errorMsg="Payment service is in maintenance", retryAfter="30"))

    assert outcome == RetryAfter(30.0, Failure(FailureKind.UNAVAILABLE, 503, error_msg="Payment service is in maintenance"))
    assert described(outcome) == "HTTP 503 Service Unavailable: Payment service is in maintenance"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(HTTPHeaderDict({"Retry-After": "12"}), id="urllib3-HTTPHeaderDict"),
        pytest.param({"RETRY-AFTER": "12"}, id="upper-case-dict"),
        pytest.param({"retry-after": "12"}, id="lower-case-dict"),
    ],
)
def test_headers_are_read_case_insensitively(headers: dict[str, str]) -> None:
    assert respond("capture", 429, b"", headers) == RetryAfter(12.0, Failure(FailureKind.THROTTLED, 429))


# --- 5xx and 429/503 without a delay: transient, back off exponentially -------------------------

TRANSIENT_ROWS = [
    pytest.param(429, {}, b"", ["HTTP 429 Too Many Requests"], id="429-missing-retry-after"),
    pytest.param(429, {"Retry-After": "soon"}, b"", ["HTTP 429"], id="429-garbage-retry-after"),
    pytest.param(429, {"Retry-After": "-5"}, b"", ["HTTP 429"], id="429-negative-retry-after"),
    pytest.param(429, {"Retry-After": ""}, b"", ["HTTP 429"], id="429-empty-retry-after"),
    pytest.param(
        429, {}, json_body(errorMsg="slow down", retryAfter="30"), ["HTTP 429", "slow down"],
        id="429-body-retryAfter-is-not-the-header",
    ),
    pytest.param(
        503, {}, json_body(errorMsg="maintenance"), ["HTTP 503 Service Unavailable", "maintenance"],
        id="503-neither-body-nor-header",
    ),
    pytest.param(
        503, {"Retry-After": "later"}, json_body(errorMsg="maintenance", retryAfter="-1"), ["HTTP 503"],
        id="503-both-unreadable",
    ),
    pytest.param(
        500, {}, json_body(errorMsg="ServiceException"), ["HTTP 500 Internal Server Error", "ServiceException"],
        id="500-json-body",
    ),
    pytest.param(
        500, {}, b"<html><body><h1>Internal Server Error</h1></body></html>", ["HTTP 500", "<h1>Internal Server Error</h1>"],
        id="500-html-body",
    ),
    pytest.param(500, {}, b"", ["HTTP 500 Internal Server Error"], id="500-empty-body"),
    pytest.param(502, {}, b"<html>502 Bad Gateway</html>", ["HTTP 502 Bad Gateway"], id="502-bad-gateway"),
    pytest.param(504, {}, b"", ["HTTP 504 Gateway Timeout"], id="504-gateway-timeout"),
    pytest.param(599, {}, b"", ["HTTP 599"], id="any-other-5xx"),
]


@pytest.mark.parametrize(("status", "headers", "body", "named"), TRANSIENT_ROWS)
def test_5xx_and_undelayed_throttling_are_transient(status: int, headers: dict[str, str], body: bytes, named: list[str]) -> None:
    outcome = respond("capture", status, body, headers)

    assert isinstance(outcome, Transient)
    assert outcome.failure.status == status
    assert outcome.throttled == (status == 429)
    for text in named:
        assert text in described(outcome)


def test_500_with_an_empty_body_is_just_the_status() -> None:
    outcome = respond("feedback", 500, b"")

    assert outcome == Transient(Failure(FailureKind.SERVER_ERROR, 500))
    assert described(outcome) == "HTTP 500 Internal Server Error"


# --- no response at all -------------------------------------------------------------------------

# urllib3's exceptions built as urllib3 raises them (retries off, so never wrapped in MaxRetryError),
# around a pool and a connection that never connect.
POOL = HTTPSConnectionPool("api.example", 443)
CONN = HTTPSConnection("api.example", 443)
PATH = "/v1/capture/charge"


def raised(call: Callable[[], object]) -> BaseException:
    """What ``call`` raises."""
    with pytest.raises(Exception) as caught:
        call()
    return caught.value


EXCEPTION_ROWS = [
    # timeouts: transient
    pytest.param(
        u3.ConnectTimeoutError(CONN, "Connection to api.example timed out. (connect timeout=3.0)"),
        Transient, ["timeout", "ConnectTimeoutError"],
        id="connect-timeout",
    ),
    pytest.param(
        u3.ReadTimeoutError(POOL, PATH, "Read timed out. (read timeout=10.0)"),
        Transient, ["timeout", "ReadTimeoutError"],
        id="read-timeout",
    ),
    pytest.param(
        u3.ProtocolError("Connection aborted.", TimeoutError("timed out")),
        Transient, ["timeout", "ProtocolError"],
        id="write-timeout",
    ),
    pytest.param(TimeoutError("timed out"), Transient, ["timeout", "TimeoutError"], id="socket-timeout"),
    # no connection, or a broken one: transient
    pytest.param(
        u3.NewConnectionError(CONN, "Failed to establish a new connection: [Errno 111] Connection refused"),
        Transient, ["connection failed", "NewConnectionError", "Connection refused"],
        id="connection-refused",
    ),
    pytest.param(
        u3.NameResolutionError("api.example", CONN, socket.gaierror(-2, "Name or service not known")),
        Transient, ["connection failed", "NameResolutionError", "Failed to resolve 'api.example'"],
        id="name-resolution",
    ),
    pytest.param(
        u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer")),
        Transient, ["connection failed", "ProtocolError", "Connection reset by peer"],
        id="connection-reset",
    ),
    pytest.param(
        u3.ProtocolError("Connection aborted.", http.client.RemoteDisconnected("Remote end closed connection without response")),
        Transient, ["connection failed", "ProtocolError", "RemoteDisconnected"],
        id="remote-disconnected",
    ),
    pytest.param(
        u3.ProtocolError(f"Connection broken: {u3.IncompleteRead(12, 30)!r}", u3.IncompleteRead(12, 30)),
        Transient, ["connection failed", "ProtocolError", "IncompleteRead(12 bytes read, 30 more expected)"],
        id="incomplete-read",
    ),
    pytest.param(
        u3.DecodeError("Received response with content-encoding: gzip, but failed to decode it.",
                       zlib.error("Error -3 while decompressing data: incorrect header check")),
        Transient, ["connection failed", "DecodeError", "content-encoding: gzip"],
        id="decode-error",
    ),
    pytest.param(
        u3.SSLError(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")),
        Transient, ["connection failed", "SSLError", "CERTIFICATE_VERIFY_FAILED"],
        id="tls-verification",
    ),
    pytest.param(
        u3.MaxRetryError(POOL, PATH, u3.NewConnectionError(CONN, "Failed to establish a new connection: [Errno 111] Connection refused")),
        Transient, ["connection failed", "NewConnectionError", "Connection refused"],
        id="max-retries-names-its-reason",
    ),
    # the standard library's, beneath urllib3
    pytest.param(ConnectionRefusedError(111, "Connection refused"), Transient, ["connection failed", "ConnectionRefusedError"],
                 id="stdlib-refused"),
    pytest.param(http.client.IncompleteRead(b"{", 30), Transient, ["connection failed", "IncompleteRead"], id="stdlib-incomplete-read"),
    pytest.param(http.client.RemoteDisconnected("Remote end closed connection without response"), Transient,
                 ["connection failed", "RemoteDisconnected"], id="stdlib-remote-disconnected"),
    # could not be sent: permanent (configuration)
    pytest.param(
        raised(lambda: parse_url("http://[::1")),
        Permanent, ["request could not be sent", "LocationParseError", "Failed to parse"],
        id="location-parse-error",
    ),
    pytest.param(
        raised(lambda: HTTPSConnectionPool(None)),  # type: ignore[arg-type]
        Permanent, ["request could not be sent", "LocationValueError", "No host specified"],
        id="no-host",
    ),
    pytest.param(
        u3.ProtocolError("Connection aborted.", http.client.InvalidURL("URL can't contain control characters. '/v1/a b' (found at least ' ')")),
        Permanent, ["request could not be sent", "ProtocolError", "control characters"],
        id="invalid-url-in-the-request-line",
    ),
    # anything else: unexpected, transient
    pytest.param(u3.ClosedPoolError(POOL, "Pool is closed."), Transient, ["unexpected error", "ClosedPoolError"], id="closed-pool"),
    pytest.param(RuntimeError("signer exploded"), Transient, ["unexpected error", "RuntimeError", "signer exploded"], id="other"),
]


@pytest.mark.parametrize(("exc", "kind", "named"), EXCEPTION_ROWS)
def test_a_call_without_a_response_is_classified_by_its_exception(exc: BaseException, kind: type, named: list[str]) -> None:
    outcome = classify_exception(exc)

    assert isinstance(outcome, kind)
    assert outcome.failure.status is None
    for text in named:
        assert text in described(outcome)


def test_an_unsendable_request_is_permanent_without_status_or_errorMsg() -> None:
    outcome = classify_exception(u3.LocationValueError("No host specified."))

    assert outcome == Permanent(Failure(FailureKind.UNSENDABLE, error_type="LocationValueError", detail="No host specified."))
    assert described(outcome) == "request could not be sent: LocationValueError: No host specified."


def test_a_timeout_names_only_its_kind() -> None:
    outcome = classify_exception(u3.ReadTimeoutError(POOL, PATH, "Read timed out. (read timeout=10.0)"))

    assert outcome == Transient(Failure(FailureKind.TIMEOUT, error_type="ReadTimeoutError"))
    assert described(outcome) == "timeout: ReadTimeoutError"


# --- reasons stay readable, whatever came back --------------------------------------------------

HUGE_ROWS = [
    pytest.param("capture", 500, b"<html>" + b"x" * HUGE + b"</html>", "HTTP 500", id="500-huge-html"),
    pytest.param("capture", 401, json_body(errorMsg="e" * HUGE), "HTTP 401", id="401-huge-errorMsg"),
    pytest.param("capture", 503, json_body(errorMsg="m" * HUGE, retryAfter="5"), "HTTP 503", id="503-huge-errorMsg"),
    pytest.param("capture", 429, b"z" * HUGE, "HTTP 429", id="429-huge-body"),
    pytest.param("refund", 200, b"{" + b"q" * HUGE, "HTTP 200", id="refund-200-huge-invalid-json"),
    pytest.param("refund", 200, json_body(reconciliationId="r" * HUGE), "HTTP 200", id="refund-200-huge-reconciliationId"),
]


@pytest.mark.parametrize(("operation", "status", "body", "prefix"), HUGE_ROWS)
def test_reason_is_bounded_for_a_huge_body(operation: str, status: int, body: bytes, prefix: str) -> None:
    outcome = respond(operation, status, body)

    assert isinstance(outcome, Transient | Permanent | RetryAfter)
    assert described(outcome).startswith(prefix)
    assert len(described(outcome)) <= REASON_LIMIT


def test_reason_is_bounded_for_a_huge_exception_message() -> None:
    outcome = classify_exception(u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset " * HUGE)))

    assert isinstance(outcome, Transient)
    assert len(described(outcome)) <= REASON_LIMIT


def test_an_undecodable_body_does_not_break_classification() -> None:
    outcome = respond("capture", 500, b"\xff\xfe\x00garbage")

    assert isinstance(outcome, Transient)
    assert described(outcome).startswith("HTTP 500 Internal Server Error")


def test_credential_material_echoed_in_an_error_body_never_reaches_the_reason() -> None:
    body = (
        b'{"message": "The request signature we calculated does not match. The Canonical String for this request should have been '
        b"'POST\\n/v1/refund\\n\\nhost:api\\nx-amz-date:20261121T000000Z\\nx-amz-security-token:FwoGZXIvYXdzEXAMPLETOKEN\\n' "
        b'Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261121/us-east-1/execute-api/aws4_request, Signature=abc123"}'
    )
    outcome = classify(Operation.REFUND, 403, {}, body, now=NOW)

    assert isinstance(outcome, Permanent)
    for text in (described(outcome), repr(outcome.failure)):
        assert "FwoGZXIvYXdzEXAMPLETOKEN" not in text
        assert "abc123" not in text
        assert "AKIDEXAMPLE" not in text


# --- a store backend's answer to an outcome notification --------------------------------------------

@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        pytest.param(200, {}, b"", Success(status=200), id="200-delivered"),
        pytest.param(204, {}, b"", Success(status=204), id="204-delivered"),
        pytest.param(429, {"Retry-After": "30"}, b"", RetryAfter(30.0, Failure(FailureKind.THROTTLED, 429)), id="429-retry-after"),
        pytest.param(503, {"retry-after": "5"}, b"down", RetryAfter(5.0, Failure(FailureKind.UNAVAILABLE, 503, detail="down")),
                     id="503-retry-after-any-case"),
        pytest.param(429, {}, b"", Transient(Failure(FailureKind.THROTTLED, 429)), id="429-without-delay-backs-off"),
        pytest.param(500, {}, b"oops", Transient(Failure(FailureKind.SERVER_ERROR, 500, detail="oops")), id="500-later"),
        pytest.param(400, {}, b"bad", Transient(Failure(FailureKind.REFUSED, 400, detail="bad")), id="400-later-not-final"),
        pytest.param(410, {"Retry-After": "9"}, b"", Transient(Failure(FailureKind.REFUSED, 410)), id="410-retry-after-ignored"),
    ],
)
def test_a_receivers_answer_is_delivered_or_tried_again_never_final(status: int, headers: dict[str, str], body: bytes,
                                                                     expected: Outcome) -> None:
    assert classify_receiver(status, headers, body, NOW) == expected
