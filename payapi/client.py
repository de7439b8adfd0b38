"""The payment API over HTTP: one keep-alive session per process, one `call` for every operation.

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
from payapi.models import RequestModel
from payapi.operations import Operation, api_path
from payapi.outcomes import Outcome, RetryAfter, Success, classify, classify_exception

log = logging.getLogger("payq.api")

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
        self._session = session or make_session(settings.http_pool_size)
        self._signer = signer
        self._clock = clock

    def call(self, operation: Operation, request: RequestModel) -> Outcome:
        """POST ``request`` to ``operation``'s endpoint and classify what came back."""
        return self.send(operation, request, self.prepare(operation, request))

    def prepare(self, operation: Operation, request: RequestModel) -> requests.PreparedRequest:
        """``request`` as it will go out, serialized once (the bytes signed are the bytes sent).

        Made ahead of :meth:`send` by a job waiting for its turn at a paced
        endpoint, so that on the turn only the sending is left to do.
        """
        body = wire.dumps(request).encode()
        return requests.Request(
            "POST", self._base + api_path(operation), data=body, headers={"Content-Type": "application/json"}
        ).prepare()

    def send(self, operation: Operation, request: RequestModel, prepared: requests.PreparedRequest) -> Outcome:
        """Sign (if configured) and send ``prepared``, made by :meth:`prepare` from ``request``, and classify the answer."""
        started = time.perf_counter()
        status: int | None = None
        try:
            if self._signer is not None:
                self._signer(prepared)
            response = self._session.send(prepared, timeout=self._timeout, allow_redirects=False)
            status = response.status_code
            outcome = classify(operation, status, response.headers, response.content, now=self._clock())
        except Exception as exc:
            outcome = classify_exception(exc)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.log(
            logging.INFO if isinstance(outcome, Success) else logging.WARNING,
            "%s storeId=%s shoppingTripId=%s status=%s outcome=%s elapsed_ms=%.1f%s",
            operation.value, request.storeId, request.shoppingTripId, status if status is not None else "-",
            type(outcome).__name__, elapsed_ms, _detail(outcome),
        )
        return outcome


def _detail(outcome: Outcome) -> str:
    if isinstance(outcome, Success):
        return ""
    delay = f" retry_after={outcome.delay:g}" if isinstance(outcome, RetryAfter) else ""
    return f"{delay} failure={outcome.failure.describe()[:300]!r}"
