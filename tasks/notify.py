"""Outcome notifications: one event for every job that succeeds or is dead-lettered, signed per Standard Webhooks.

An event is a job of its own (operation ``notify``, task and queue
``payments.notify``), recorded and published in the same atomic step that
records the outcome it tells of: an outbox, so an outcome is never recorded
without its event nor an event sent for an outcome that was not recorded. Its
job id derives from the event's id, which is also its ``webhook-id``: a
second delivery of the same outcome (a message delivered twice) makes no
second event. Delivering it is a job like any other: retried with Retry-After
or backoff for hours (``PAYQ_NOTIFY_MAX_ATTEMPTS``), then dead-lettered as
``notify-failed`` and replayable.

A slow or dead receiver must never delay a payment job: each worker process
delivers at most a few notifications at once, with short timeouts, and a
delivery that finds them all busy waits a moment in the deferred set (its
attempt given back) instead of taking a thread.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from standardwebhooks import Webhook

from config.settings import Settings
from payapi.client import make_session
from payapi.models import NotificationData, NotificationEvent
from payapi.operations import OPERATIONS, Operation
from payapi.outcomes import (
    Failure,
    FailureKind,
    Outcome,
    RetryAfter,
    Success,
    Transient,
    bounded,
    classify_exception,
    parse_retry_after,
)
from tasks.decide import RetryPolicy
from tasks.jobstore import NewJob
from tasks.states import DeadLetterReason

log = logging.getLogger("payq.notify")

SUCCEEDED = "job.succeeded"
DEAD_LETTERED = "job.dead_lettered"
BUSY_WAIT = 1.0          # seconds (0.5 to 1.5, spread) a delivery waits when its worker's delivery slots are all taken
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0       # a receiver should answer at once and do its work later (Standard Webhooks' advice)
BACKOFF_BASE = 2.0
BACKOFF_CAP = 3600.0     # an hour: with the default 20 attempts, deliveries go on for about five hours


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def public_result(result: dict[str, Any]) -> dict[str, Any]:
    """A job's result as a store backend reads it: a capture's ``settledAt`` (kept as epoch seconds, the report's time) in UTC ISO 8601."""
    settled = result.get("settledAt")
    if isinstance(settled, int | float) and not isinstance(settled, bool):
        return {**result, "settledAt": datetime.fromtimestamp(settled, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return result


def _job(event: NotificationEvent) -> NewJob:
    kwargs = event.model_dump(mode="json", exclude_none=True)
    return NewJob(Operation.NOTIFY, OPERATIONS[Operation.NOTIFY].job_id(kwargs), kwargs)


def succeeded(job_id: str, operation: Operation, kwargs: Mapping[str, Any], result: dict[str, Any], now: float) -> NewJob:
    """The event for ``job_id``'s success (one per job: it succeeds once)."""
    data = NotificationData(jobId=job_id, operation=operation.value, storeId=kwargs.get("storeId"),
                            shoppingTripId=kwargs.get("shoppingTripId"), state="succeeded", result=public_result(result), status=200)
    return _job(NotificationEvent(id=f"{job_id}:succeeded", type=SUCCEEDED, timestamp=_iso(now), data=data))


def dead_lettered(job_id: str, operation: Operation, kwargs: Mapping[str, Any], reason: DeadLetterReason, failure: Failure,
                  replays: int, now: float) -> NewJob:
    """The event for ``job_id``'s dead-lettering after ``replays`` replays (a replayed job that fails again is a new outcome)."""
    data = NotificationData(jobId=job_id, operation=operation.value, storeId=kwargs.get("storeId"),
                            shoppingTripId=kwargs.get("shoppingTripId"), state="dead-lettered", reason=reason.value,
                            status=failure.status, errorMsg=failure.error_msg or failure.describe())
    return _job(NotificationEvent(id=f"{job_id}:dead:{replays}", type=DEAD_LETTERED, timestamp=_iso(now), data=data))


def test_event(now: float) -> NotificationEvent:
    """What ``payq notify test`` sends: a ``test`` event about no job."""
    data = NotificationData(jobId="test", operation="notify", state="succeeded", result={"test": True}, status=200)
    return NotificationEvent(id=f"test:{int(now * 1000)}", type="test", timestamp=_iso(now), data=data)


def policy(settings: Settings) -> RetryPolicy:
    """How notifications are retried: backoff for hours, then ``notify-failed``."""
    return RetryPolicy(
        max_attempts=settings.notify_max_attempts, backoff_base=BACKOFF_BASE, backoff_cap=BACKOFF_CAP,
        retry_after_floor=settings.retry_after_floor, retry_after_cap=settings.retry_after_cap,
        retry_after_jitter=settings.retry_after_jitter, exhausted=DeadLetterReason.NOTIFY_FAILED,
    )


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


def new_secret() -> str:
    """A new Standard Webhooks signing secret: ``whsec_`` and the base64 of 32 random bytes (the spec asks for 24 to 64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class Notifier:
    """Delivers events to ``PAYQ_NOTIFY_URL``; one per worker process, shared by its threads."""

    def __init__(self, url: str, secret: str, *, slots: int = 4, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._url = url
        self._webhook = Webhook(secret)
        self._session = session or make_session(max(slots, 1))
        self._slots = threading.BoundedSemaphore(max(slots, 1))
        self._clock = clock

    def __repr__(self) -> str:
        return "Notifier(...)"  # never the secret, nor a URL that may carry credentials

    def try_slot(self) -> bool:
        """Take a delivery slot without waiting; False when every slot is in use (the receiver is slow)."""
        return self._slots.acquire(blocking=False)

    def release_slot(self) -> None:
        """Give a slot back."""
        self._slots.release()

    def deliver(self, event: NotificationEvent) -> Outcome:
        """POST ``event``, signed, and classify the answer; never raises."""
        body = json.dumps(event.model_dump(mode="json", exclude_none=True), separators=(",", ":"))
        sent_at = self._clock()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "payq-notify",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(sent_at)),
            "webhook-signature": self._webhook.sign(event.id, datetime.fromtimestamp(int(sent_at), UTC), body),
        }
        try:
            response = self._session.post(self._url, data=body.encode(), headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                                          allow_redirects=False)
            outcome = classify_receiver(response.status_code, response.headers, response.content, self._clock())
        except Exception as exc:
            outcome = classify_exception(exc)
        log.log(logging.INFO if isinstance(outcome, Success) else logging.WARNING, "notify %s type=%s outcome=%s%s",
                event.id, event.type, type(outcome).__name__,
                "" if isinstance(outcome, Success) else f" failure={outcome.failure.describe()[:200]!r}")
        return outcome


def notifier(settings: Settings) -> Notifier | None:
    """The process's notifier, or None when notifications are off."""
    if settings.notify_url is None or settings.notify_secret is None:
        return None
    return Notifier(settings.notify_url, settings.notify_secret.get_secret_value(), slots=max(2, settings.worker_concurrency // 8))
