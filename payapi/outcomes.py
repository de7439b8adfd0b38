"""What an API call's result means for the job: the one place that reads status codes.

``classify`` turns (status, headers, body) into an outcome and
``classify_exception`` does the same for a call that got no response. Both are
pure: the clock and the Retry-After bounds are arguments.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Literal

import requests
from pydantic import BaseModel, ValidationError

from payapi.models import ErrorBody, FeedbackResponse, RefundResponse

Operation = Literal["capture", "cancel", "refund", "feedback"]
OPERATIONS: tuple[Operation, ...] = ("capture", "cancel", "refund", "feedback")
# Bodies that carry data the job must keep; capture and cancel answer an empty 200.
_RESPONSE_MODELS: dict[str, type[BaseModel]] = {"refund": RefundResponse, "feedback": FeedbackResponse}
_SNIPPET = 200
# RFC 9110 §5.6.7: recipients must accept the obsolete asctime form, which is GMT
_ASCTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}")


@dataclass(frozen=True)
class Success:
    """The API did it; ``body`` is the parsed response where the operation has one."""

    body: RefundResponse | FeedbackResponse | None = None


@dataclass(frozen=True)
class RetryAfter:
    """The API said when to come back: run again in ``seconds``."""

    seconds: float
    reason: str
    status: int


@dataclass(frozen=True)
class Transient:
    """A fault that may pass: back off exponentially and try again."""

    reason: str
    status: int | None = None


@dataclass(frozen=True)
class Permanent:
    """The API refused the request as it stands: dead-letter it after this one call."""

    status: int | None
    error_msg: str | None
    reason: str


Outcome = Success | RetryAfter | Transient | Permanent


@dataclass(frozen=True)
class RetryAfterBounds:
    """Floor and cap for a server-sent delay, in seconds."""

    floor: float
    cap: float


def parse_retry_after(value: str | None, now: float, bounds: RetryAfterBounds) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date), clamped; ``None`` if unusable."""
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
        seconds = when.timestamp() - now
        seconds = max(seconds, 0.0)  # a date already past means "now"
    else:
        if not math.isfinite(seconds) or seconds < 0:
            return None
    return max(bounds.floor, min(bounds.cap, seconds))


# API Gateway's signature errors echo the canonical request, session token included
_SECRETS = re.compile(r"(x-amz-security-token[\"']?\s*[:=]\s*[\"']?|Signature=|Credential=)[^\s,\"';&]+", re.IGNORECASE)


def scrub(text: str) -> str:
    """``text`` with credential material (session tokens, signatures) replaced by ``***``."""
    return _SECRETS.sub(lambda m: m.group(1) + "***", text)


def _snippet(body: bytes) -> str:
    text = scrub(body.decode("utf-8", "replace").strip())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def _error_body(body: bytes) -> ErrorBody:
    try:
        data = json.loads(body, parse_float=Decimal)
        return ErrorBody.model_validate(data) if isinstance(data, dict) else ErrorBody()
    except (ValueError, ValidationError):
        return ErrorBody()


def _describe(status: int, body: bytes, error: ErrorBody) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown Status"
    detail = scrub(error.errorMsg) if error.errorMsg else _snippet(body)
    return f"HTTP {status} {phrase}" + (f": {detail[:_SNIPPET]}" if detail else "")


def classify(
    operation: Operation,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    bounds: RetryAfterBounds,
) -> Outcome:
    """Classify one HTTP response to ``operation``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if 200 <= status < 300:
        return _classify_success(operation, body)
    error = _error_body(body)
    reason = _describe(status, body, error)
    if status in (429, 503):
        header_delay = parse_retry_after(lowered.get("retry-after"), now, bounds)
        body_delay = parse_retry_after(error.retryAfter, now, bounds) if status == 503 else None
        delays = [d for d in (header_delay, body_delay) if d is not None]
        if delays:
            # both present: honour both, so never earlier than either asks
            return RetryAfter(max(delays), reason, status)
        return Transient(reason + " (no usable retry delay)", status)
    if status >= 500:
        return Transient(reason, status)
    if status == 400:
        kind = lowered.get("x-amzn-errortype", "")
        known = "UnknownShoppingTrip" if "UnknownShoppingTrip" in f"{kind} {error.errorMsg or ''}" else "BadRequestException"
        return Permanent(status, _bounded(error.errorMsg), known)
    return Permanent(status, _bounded(error.errorMsg), reason)


def _bounded(text: str | None) -> str | None:
    if text is None:
        return None
    text = scrub(text)
    return text if len(text) <= 2 * _SNIPPET else text[: 2 * _SNIPPET] + "…"


def _classify_success(operation: Operation, body: bytes) -> Outcome:
    model = _RESPONSE_MODELS.get(operation)
    if model is None:
        return Success()  # an empty 200 is the documented answer; anything in it is ignored
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        # The call probably worked, but the job needs this body; the idempotency
        # key makes asking again safe, so retry rather than guess.
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return Transient(f"HTTP 200 with an unusable {operation} body ({where}: {first['msg']}): {_snippet(body)!r}", 200)
    assert isinstance(parsed, RefundResponse | FeedbackResponse)
    return Success(parsed)


def classify_exception(exc: BaseException) -> Outcome:
    """Classify a call that got no (complete) response."""
    name = type(exc).__name__
    if isinstance(exc, requests.Timeout):
        return Transient(f"timeout: {name}")
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return Transient(f"connection failed: {name}: {_exc_text(exc)}")
    if isinstance(exc, requests.RequestException):
        # a malformed URL or similar: configuration, which a retry will not mend
        return Permanent(None, None, f"request could not be sent: {name}: {_exc_text(exc)}")
    return Transient(f"unexpected error: {name}: {_exc_text(exc)}")


def _exc_text(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"
