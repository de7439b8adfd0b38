"""The payment API over HTTP: one keep-alive session per process, one method per operation.

Every call returns an :mod:`payapi.outcomes` value; the client itself never
raises for a bad status or a broken connection, so a worker cannot crash on
what the API sends back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import requests
from requests.adapters import HTTPAdapter

from config.settings import Settings
from payapi import wire
from payapi.models import CancelRequest, CaptureRequest, FeedbackRequest, RefundRequest, RequestModel
from payapi.outcomes import (
    Operation,
    Outcome,
    Permanent,
    RetryAfter,
    RetryAfterBounds,
    Success,
    Transient,
    classify,
    classify_exception,
)

log = logging.getLogger("payq.api")

ENDPOINTS: dict[Operation, str] = {
    "capture": "/v1/capture/charge",
    "cancel": "/v1/cancel/charge",
    "refund": "/v1/refund",
    "feedback": "/v1/feedback/payment-status",
}

Signer = Callable[[requests.PreparedRequest], None]


def make_session(pool_size: int) -> requests.Session:
    """A session whose pool holds ``pool_size`` keep-alive connections and never blocks for one."""
    session = requests.Session()
    session.trust_env = False  # proxies from the environment have no business between a worker and the API
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class PaymentClient:
    """Calls the payment API; build one per process and share it between threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        signer: Signer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = settings.api_base_url.rstrip("/")
        self._timeout = (settings.http_connect_timeout, settings.http_read_timeout)
        self._bounds = RetryAfterBounds(settings.retry_after_floor, settings.retry_after_cap)
        self._session = session or make_session(settings.http_pool_size)
        self._signer = signer
        self._clock = clock

    def capture(self, request: CaptureRequest) -> Outcome:
        """Charge a trip's cart total."""
        return self.call("capture", request)

    def cancel(self, request: CancelRequest) -> Outcome:
        """Cancel an empty cart's pre-authorisation."""
        return self.call("cancel", request)

    def refund(self, request: RefundRequest) -> Outcome:
        """Refund part or all of a captured trip."""
        return self.call("refund", request)

    def report_payment_status(self, request: FeedbackRequest) -> Outcome:
        """Report what a trip's shopper has paid to fraud and abuse."""
        return self.call("feedback", request)

    def call(self, operation: Operation, request: RequestModel) -> Outcome:
        """POST ``request`` to ``operation``'s endpoint and classify what came back."""
        # Serialized once: the bytes signed are the bytes sent.
        body = wire.dumps(request).encode()
        prepared = requests.Request(
            "POST", self._base + ENDPOINTS[operation], data=body, headers={"Content-Type": "application/json"}
        ).prepare()
        started = time.perf_counter()
        status: int | None = None
        try:
            if self._signer is not None:
                self._signer(prepared)
            response = self._session.send(prepared, timeout=self._timeout, allow_redirects=False)
            status = response.status_code
            outcome = classify(operation, status, response.headers, response.content, now=self._clock(), bounds=self._bounds)
        except Exception as exc:
            outcome = classify_exception(exc)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.log(
            logging.INFO if isinstance(outcome, Success) else logging.WARNING,
            "%s storeId=%s shoppingTripId=%s status=%s outcome=%s elapsed_ms=%.1f%s",
            operation, request.storeId, request.shoppingTripId, status if status is not None else "-",
            type(outcome).__name__, elapsed_ms, _detail(outcome),
        )
        return outcome


def _detail(outcome: Outcome) -> str:
    if isinstance(outcome, RetryAfter):
        return f" retry_after={outcome.seconds:g}"
    if isinstance(outcome, Permanent) and outcome.error_msg and outcome.error_msg not in outcome.reason:
        return f" reason={outcome.reason[:200]!r} errorMsg={outcome.error_msg[:200]!r}"
    if isinstance(outcome, Transient | Permanent):
        return f" reason={outcome.reason[:200]!r}"
    return ""
