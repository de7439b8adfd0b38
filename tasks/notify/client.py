"""The webhook client: delivers one event, a signed POST to ``PAYQ_NOTIFY_URL``, and classifies the receiver's answer."""

from __future__ import annotations

import base64
import http.client
import logging
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import certifi
from standardwebhooks import Webhook

from config.settings import Settings
from payapi.outcomes import Outcome, RetryAfter, Success, classify_exception, classify_receiver
from tasks.notify.connection import Connection
from tasks.notify.events import Event

log = logging.getLogger("payq.notify")

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0       # a receiver should answer at once and do its work later (Standard Webhooks' advice)


class WebhookClient:
    """Delivers events to ``PAYQ_NOTIFY_URL``, each delivery thread over a kept-alive connection of its own.

    Neither requests nor urllib3 nor even ``http.client``: a delivery is one
    fixed POST, and their per-call machinery cost more than the rest of the
    delivery together (measured CPU per POST: requests 0.66 ms, urllib3 0.25,
    http.client 0.08, :mod:`tasks.notify.connection` 0.04). The request's head is
    built once but for the per-event fields; the ``webhook-signature`` is the
    ``standardwebhooks`` library's. TLS trusts certifi's CA bundle, as the
    payment API client does. Redirects are not followed.
    """

    def __init__(self, url: str, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._webhook = Webhook(secret)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("PAYQ_NOTIFY_URL must be an http:// or https:// URL")
        # one context for every connection: loading the CA bundle costs milliseconds
        self._tls = ssl.create_default_context(cafile=certifi.where()) if parts.scheme == "https" else None
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls is not None else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None:
            host += f":{parts.port}"
        auth = ""
        if parts.username is not None:  # credentials in the URL become a header once, as requests would make them
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            auth = "Authorization: Basic " + base64.b64encode(pair).decode() + "\r\n"
        self._head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n"
                      "User-Agent: payq-notify\r\n")
        self._local = threading.local()
        self._clock = clock

    def __repr__(self) -> str:
        return "WebhookClient(...)"  # never the secret, nor a URL that may carry credentials

    def sign(self, event_id: str, timestamp: int, body: str) -> str:
        """The ``webhook-signature`` of ``body`` sent as ``event_id`` at ``timestamp`` (epoch seconds): the one place payq signs."""
        return self._webhook.sign(event_id, datetime.fromtimestamp(timestamp, UTC), body)

    def deliver_event(self, event: Event) -> Outcome:
        """Deliver ``event`` (``payq notify test``)."""
        return self.deliver(event.id, event.body)

    def deliver(self, event_id: str, body: str, traceparent: str = "") -> Outcome:
        """Deliver one event's ``body``, signed for ``event_id`` at this moment, and classify the receiver's answer; never raises.

        ``traceparent`` (a valid one: :func:`tasks.tracing.valid_traceparent`) is sent as that header, so the receiver's trace joins the job's.
        """
        try:
            if "\r" in event_id or "\n" in event_id:
                raise ValueError(f"an event id may not break a header line: {event_id!r}")
            sent_at = int(self._clock())
            content = body.encode()
            trace = f"traceparent: {traceparent}\r\n" if traceparent else ""
            request = (f"{self._head}{trace}webhook-id: {event_id}\r\nwebhook-timestamp: {sent_at}\r\n"
                       f"webhook-signature: {self.sign(event_id, sent_at, body)}\r\nContent-Length: {len(content)}\r\n\r\n"
                       ).encode() + content
            status, answer_headers, answer = self._post(request)
            outcome = classify_receiver(status, answer_headers, answer, self._clock())
        except Exception as exc:
            self._drop()
            outcome = classify_exception(exc)  # whatever the cause, tried again later (tasks.notify.schedule.next_step)
        if isinstance(outcome, Success):
            if log.isEnabledFor(logging.DEBUG):
                log.debug("delivery of %s: delivered", event_id)
        elif not isinstance(outcome, RetryAfter):  # a request for quiet is the delivery threads' to tell, once (workers.delivery)
            log.warning("delivery of %s failed: %s", event_id, outcome.failure.describe()[:200])
        return outcome

    def _post(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """POST on this thread's connection; once more on a fresh one if a kept-alive connection turns out closed."""
        for fresh in (False, True):
            reused = getattr(self._local, "conn", None) is not None
            conn = self._connection()
            try:
                answer = conn.post(request)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop()
                if reused and not fresh:
                    continue  # the receiver closed the idle connection: nothing was delivered on it
                raise
            if conn.closed:
                self._local.conn = None
            return answer
        raise AssertionError("unreachable")

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = Connection(self._host, self._port, self._tls, CONNECT_TIMEOUT, READ_TIMEOUT)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


def delivery_slots(settings: Settings) -> int:
    """How many delivery threads one worker process runs: one per 32 of its concurrency, at least 1.

    Few on purpose: a POST to a receiver that answers at once takes well
    under a millisecond of CPU, so one thread delivers a thousand events a
    second, and the fewer the consumers, the more entries each read and each
    settle carries (the Redis round trips cost more CPU than the POSTs).
    """
    return max(1, settings.worker_concurrency // 32)


def webhook_client(settings: Settings) -> WebhookClient | None:
    """The process's webhook client, or None when notifications are off."""
    if settings.notify_url is None or settings.notify_secret is None:
        return None
    return WebhookClient(settings.notify_url, settings.notify_secret.get_secret_value())
