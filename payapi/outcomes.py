"""What an API call's result is: the one place that reads status codes.

``classify`` turns (status, headers, body) into an outcome and
``classify_exception`` does the same for a call that got no response;
``classify_receiver`` reads a store backend's answer to an outcome
notification (``classify_exception`` serves that call too). Both are
pure, with the clock an argument. They say what the answer *is* (a success,
the API's own delay, a fault that may pass, a refusal) and keep its facts as
fields; what the job then does is :func:`tasks.jobs.decide.decide`'s business, and
the sentence a person reads is made by :meth:`Failure.describe` where it is shown.
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from http import HTTPStatus

from pydantic import ValidationError
from urllib3 import exceptions as u3

from payapi.models import ErrorBody, FeedbackResponse, ResponseModel
from payapi.operations import OPERATIONS, Operation

_SNIPPET = 200
_LINE = 300  # the most of an errorMsg a one-line description shows (the field keeps up to 400)
# RFC 9110 §5.6.7: recipients must accept the obsolete asctime form, which is GMT
_ASCTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}")


class FailureKind(StrEnum):
    """What went wrong with a call, or with a job around it."""

    THROTTLED = "throttled"          # 429: the API's rate limit
    UNAVAILABLE = "unavailable"      # 503
    SERVER_ERROR = "server-error"    # any other 5xx
    REFUSED = "refused"              # 400 and any other status that is not 2xx or 5xx
    UNUSABLE_BODY = "unusable-body"  # a 2xx whose body the job needs is not what the API documents
    TIMEOUT = "timeout"
    CONNECTION = "connection"        # refused, reset, cut short, undecodable
    UNSENDABLE = "unsendable"        # the request could not be sent (a malformed URL: configuration)
    UNEXPECTED = "unexpected"        # any other exception while calling
    # kinds payq reports about a job rather than a call
    REJECTED = "rejected"            # fraud and abuse answered Rejected to a payment-status report
    INVALID_JOB = "invalid-job"      # the job's fields broke the models
    INTERNAL = "internal"            # handling the job raised something unforeseen
    CAPTURE_FAILED = "capture-failed"  # a refund whose trip's capture was dead-lettered and purged (error_type: the capture)


@dataclass(frozen=True)
class Failure:
    """The facts of one failure, each bounded and scrubbed of credentials.

    ``error_type`` is the API's error type (``UnknownShoppingTrip``,
    ``BadRequestException``), an exception's class, or a report's reasonCode;
    ``error_msg`` the API's ``errorMsg``; ``detail`` whatever else identifies
    it (a snippet of a body without errorMsg, an exception's text, which field
    of a 200 body was unusable).
    """

    kind: FailureKind
    status: int | None = None
    error_type: str | None = None
    error_msg: str | None = None
    detail: str | None = None

    def headline(self) -> str:
        """What happened, without the details: ``HTTP 503 Service Unavailable``, ``timeout``, ``connection failed``."""
        if self.kind is FailureKind.REJECTED:
            return "Rejected"
        if self.kind is FailureKind.UNUSABLE_BODY:
            return f"HTTP {self.status} with an unusable body"
        if self.status is not None:
            return f"HTTP {self.status} {_phrase(self.status)}"
        return _NO_STATUS_HEADS.get(self.kind, self.kind.value)

    def describe(self) -> str:
        """One line for a person: a log line, a dead letter, Flower, the CLI."""
        if self.kind is FailureKind.REJECTED:
            return f"Rejected: {self.error_type or 'no reasonCode'}"
        if self.kind is FailureKind.CAPTURE_FAILED:
            return f"its capture {self.error_type} was dead-lettered and purged: the refund was never sent"
        parts = [self.headline()]
        message = self.error_msg or self.detail
        if self.error_type and not (message or "").startswith(self.error_type):
            parts.append(self.error_type)
        if message:
            parts.append(message if len(message) <= _LINE else message[:_LINE] + "…")
        return ": ".join(parts)


_NO_STATUS_HEADS = {
    FailureKind.TIMEOUT: "timeout",
    FailureKind.CONNECTION: "connection failed",
    FailureKind.UNSENDABLE: "request could not be sent",
    FailureKind.UNEXPECTED: "unexpected error",
    FailureKind.INVALID_JOB: "invalid job",
    FailureKind.INTERNAL: "internal error",
}


@dataclass(frozen=True)
class Success:
    """The API did it; ``body`` is the parsed response where the operation has one."""

    body: ResponseModel | None = None
    status: int = 200


@dataclass(frozen=True)
class RetryAfter:
    """The API said when to come back: in ``delay`` seconds (as sent, not yet clamped)."""

    delay: float
    failure: Failure

    @property
    def throttled(self) -> bool:
        """A 429: the endpoint's rate limit, not this job's fault."""
        return self.failure.kind is FailureKind.THROTTLED


@dataclass(frozen=True)
class Transient:
    """A fault that may pass, with no delay from the API: back off and try again."""

    failure: Failure

    @property
    def throttled(self) -> bool:
        """A 429 without a usable Retry-After."""
        return self.failure.kind is FailureKind.THROTTLED


@dataclass(frozen=True)
class Permanent:
    """The API refused the request as it stands (or it could not be sent): trying again cannot help."""

    failure: Failure

    @property
    def throttled(self) -> bool:
        """Never: a refusal is not a rate limit."""
        return False


@dataclass(frozen=True)
class Rejected:
    """The API took the call and answered no: fraud and abuse ``Rejected`` a payment-status report (``failure.error_type``: its reasonCode)."""

    failure: Failure

    @property
    def throttled(self) -> bool:
        """Never: an answer, not a rate limit."""
        return False


Outcome = Success | RetryAfter | Transient | Permanent | Rejected


def status_of(outcome: Outcome) -> int | None:
    """The HTTP status the call got, or None when it got no response."""
    return outcome.status if isinstance(outcome, Success) else outcome.failure.status


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date); ``None`` if unusable.

    An HTTP-date already past means 0. The configured floor and cap are
    applied by the retry decision, not here.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            if not _ASCTIME.fullmatch(value):
                return None  # an HTTP-date is always GMT; a zoneless one is not an HTTP-date
            when = when.replace(tzinfo=datetime.UTC)
        return max(when.timestamp() - now, 0.0)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


# API Gateway's signature errors echo the canonical request, session token included
_SECRETS = re.compile(r"(x-amz-security-token[\"']?\s*[:=]\s*[\"']?|Signature=|Credential=)[^\s,\"';&]+", re.IGNORECASE)


def scrub(text: str) -> str:
    """``text`` with credential material (session tokens, signatures) replaced by ``***``."""
    return _SECRETS.sub(lambda m: m.group(1) + "***", text)


def bounded(text: str | None, limit: int = _SNIPPET) -> str | None:
    """``text`` scrubbed and cut to ``limit`` characters (with an ellipsis), or None."""
    if text is None:
        return None
    text = scrub(text)
    return text if len(text) <= limit else text[:limit] + "…"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Status"


def _snippet(body: bytes) -> str | None:
    return bounded(body.decode("utf-8", "replace").strip()) or None


def _error_body(body: bytes) -> ErrorBody:
    try:
        data = json.loads(body, parse_float=Decimal)
        return ErrorBody.model_validate(data) if isinstance(data, dict) else ErrorBody()
    except (ValueError, ValidationError):
        return ErrorBody()


_KIND_OF_STATUS = {429: FailureKind.THROTTLED, 503: FailureKind.UNAVAILABLE}


def classify(operation: Operation, status: int, headers: Mapping[str, str], body: bytes, *, now: float) -> Outcome:
    """Classify one HTTP response to ``operation``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if 200 <= status < 300:
        return _classify_success(operation, status, body)
    error = _error_body(body)
    error_msg = bounded(error.errorMsg, 2 * _SNIPPET)
    if status >= 500 or status == 429:
        kind = _KIND_OF_STATUS.get(status, FailureKind.SERVER_ERROR)
        failure = Failure(kind, status, error_msg=error_msg, detail=None if error_msg else _snippet(body))
        if status in (429, 503):
            header_delay = parse_retry_after(lowered.get("retry-after"), now)
            body_delay = parse_retry_after(error.retryAfter, now) if status == 503 else None
            delays = [d for d in (header_delay, body_delay) if d is not None]
            if delays:
                # both present: honour both, so never earlier than either asks
                return RetryAfter(max(delays), failure)
        return Transient(failure)
    error_type = None
    if status == 400:
        claimed = f"{lowered.get('x-amzn-errortype', '')} {error.errorMsg or ''}"
        error_type = "UnknownShoppingTrip" if "UnknownShoppingTrip" in claimed else "BadRequestException"
    return Permanent(Failure(FailureKind.REFUSED, status, error_type, error_msg, None if error_msg else _snippet(body)))


def _classify_success(operation: Operation, status: int, body: bytes) -> Outcome:
    model = OPERATIONS[operation].response
    if model is None:
        return Success(status=status)  # an empty 200 is the documented answer; anything in it is ignored
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        # The call probably worked, but the job needs this body; the idempotency
        # key makes asking again safe, so retry rather than guess.
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        detail = f"{operation} {where}: {first['msg']}: {_snippet(body) or '(empty)'!r}"
        return Transient(Failure(FailureKind.UNUSABLE_BODY, status, detail=bounded(detail, 2 * _SNIPPET)))
    if isinstance(parsed, FeedbackResponse) and parsed.status == "Rejected":
        return Rejected(Failure(FailureKind.REJECTED, status, parsed.reasonCode))
    return Success(parsed, status)


# What a call that got no (complete) response ran into: urllib3's exceptions (raised as they are,
# retries being off) and the standard library's beneath them, each group checked in this order.
# urllib3's NewConnectionError (refused, unreachable, no such host) subclasses its ConnectTimeoutError;
# http.client's InvalidURL subclasses HTTPException; TimeoutError subclasses OSError.
_UNSENDABLE = (u3.LocationValueError, http.client.InvalidURL)  # a malformed URL: configuration, which a retry will not mend
_TIMEOUT = (u3.TimeoutError, TimeoutError)  # urllib3's ConnectTimeoutError and ReadTimeoutError; a socket's timeout
_CONNECTION = (
    u3.ProtocolError,    # aborted, reset, closed without an answer, cut short (IncompleteRead), bad chunking
    u3.SSLError,         # the TLS handshake or the certificate's verification failed
    u3.ProxyError,
    u3.DecodeError,      # a Content-Encoding that does not decode
    u3.IncompleteRead,
    u3.InvalidChunkLength,
    http.client.HTTPException,
    OSError,             # refused, reset, broken pipe, unreachable
)


def classify_exception(exc: BaseException) -> Outcome:
    """Classify a call that got no (complete) response."""
    if isinstance(exc, u3.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # raised only with retries on: the last error is what happened
    # urllib3 wraps the standard library's errors while sending as ProtocolError("Connection aborted.", cause)
    cause = exc.args[1] if isinstance(exc, u3.ProtocolError) and len(exc.args) > 1 else None
    name = type(exc).__name__
    text = bounded(str(exc)) or None
    if isinstance(exc, _UNSENDABLE) or isinstance(cause, http.client.InvalidURL):
        return Permanent(Failure(FailureKind.UNSENDABLE, error_type=name, detail=text))
    if isinstance(exc, u3.NewConnectionError):
        return Transient(Failure(FailureKind.CONNECTION, error_type=name, detail=text))
    if isinstance(exc, _TIMEOUT) or isinstance(cause, TimeoutError):
        return Transient(Failure(FailureKind.TIMEOUT, error_type=name))
    if isinstance(exc, _CONNECTION):
        return Transient(Failure(FailureKind.CONNECTION, error_type=name, detail=text))
    return Transient(Failure(FailureKind.UNEXPECTED, error_type=name, detail=text))


def classify_receiver(status: int, headers: Mapping[str, str], body: bytes, now: float) -> Outcome:
    """What a receiver's answer means: 2xx delivered; 429 and 503 come back after their Retry-After; anything else later.

    A receiver's refusal is not final the way the payment API's is: a
    misconfigured endpoint is usually mended within hours, so every other
    status is retried with backoff until the attempts run out.
    """
    if 200 <= status < 300:
        return Success(status=status)
    kind = {429: FailureKind.THROTTLED, 503: FailureKind.UNAVAILABLE}.get(
        status, FailureKind.SERVER_ERROR if status >= 500 else FailureKind.REFUSED)
    failure = Failure(kind, status, detail=bounded(body.decode("utf-8", "replace").strip()) or None)
    if status in (429, 503):
        lowered = {k.lower(): v for k, v in headers.items()}
        delay = parse_retry_after(lowered.get("retry-after"), now)
        if delay is not None:
            return RetryAfter(delay, failure)
    return Transient(failure)
