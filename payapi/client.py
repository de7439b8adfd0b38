"""The payment API over HTTP: one keep-alive connection pool per process, one `call` for every operation.

Every call returns an :mod:`payapi.outcomes` value; the client itself never
raises for a bad status or a broken connection, so a worker cannot crash on
what the API sends back.

urllib3 itself, not requests (which sends through urllib3 anyway): a call is
one fixed POST to one host, and requests' per-call machinery (preparing,
cookie jars, hooks, adapters, building its response) cost a worker about
0.3 ms of CPU a job out of some 1.9 (measured: the 0 ms drain ran 12% more
jobs a second without it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, Timeout
from urllib3.exceptions import LocationValueError
from urllib3.util import Retry, parse_url

from config.settings import Settings
from payapi import wire
from payapi.models import RequestModel
from payapi.operations import Operation, api_path
from payapi.outcomes import Outcome, RetryAfter, Success, classify, classify_exception

try:  # the CA bundle requests verified against, where it is installed; else the system's
    import certifi

    _CA_CERTS: str | None = certifi.where()
except ImportError:  # pragma: no cover - certifi comes with botocore's and requests' installs
    _CA_CERTS = None

log = logging.getLogger("payq.api")

# No retries (a retry is the job's decision, with backoff and the idempotency key) and no redirects.
_NO_RETRIES = Retry(total=False, redirect=False)


@dataclass(slots=True)
class Prepared:
    """One request as it goes out: made by :meth:`PaymentClient.prepare`, signed in place by a :data:`Signer`.

    ``url`` is absolute (what a signer signs); ``path`` is what goes on the
    request line, to ``url``'s host. ``body`` is the exact bytes sent.
    ``headers`` are the ones payq sets, named as written here; urllib3 adds
    Host (from the URL). SigV4 signs every one but User-Agent.
    """

    method: str
    url: str
    path: str
    headers: dict[str, str]
    body: bytes


Signer = Callable[[Prepared], None]


def json_post(url: str, path: str, body: bytes) -> Prepared:
    """A POST of the JSON ``body`` to ``url`` (``path`` on its host), with the headers every API call carries."""
    return Prepared("POST", url, path, {"Content-Type": "application/json", "Content-Length": str(len(body)), "User-Agent": "payq"},
                    body)


class PaymentClient:
    """Calls the payment API; build one per process and share it between threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        signer: Signer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = settings.api_base_url.rstrip("/")
        self._prefix = ""
        self._signer = signer
        self._clock = clock
        self._pool: HTTPConnectionPool | None = None
        self._unusable = ""
        try:
            self._pool, self._prefix = _pool_for(self._base, settings)
        except LocationValueError as exc:
            # Every call is then a Permanent UNSENDABLE failure, as a malformed URL always was (the text never holds the URL).
            self._unusable = str(exc)

    def call(self, operation: Operation, request: RequestModel) -> Outcome:
        """POST ``request`` to ``operation``'s endpoint and classify what came back."""
        return self.send(operation, request, self.prepare(operation, request))

    def prepare(self, operation: Operation, request: RequestModel) -> Prepared:
        """``request`` as it will go out, serialized once (the bytes signed are the bytes sent).

        Made ahead of :meth:`send` by a job waiting for its turn at a paced
        endpoint, so that on the turn only the sending is left to do.
        """
        path = api_path(operation)
        return json_post(self._base + path, self._prefix + path, wire.dumps(request).encode())

    def send(self, operation: Operation, request: RequestModel, prepared: Prepared) -> Outcome:
        """Sign (if configured) and send ``prepared``, made by :meth:`prepare` from ``request``, and classify the answer."""
        started = time.perf_counter()
        status: int | None = None
        try:
            if self._pool is None:
                raise LocationValueError(self._unusable)
            if self._signer is not None:
                self._signer(prepared)
            response = self._pool.urlopen(
                prepared.method, prepared.path, body=prepared.body, headers=prepared.headers,
                redirect=False, assert_same_host=False, preload_content=True,
            )
            status = response.status
            outcome = classify(operation, status, response.headers, response.data, now=self._clock())
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


def _pool_for(base: str, settings: Settings) -> tuple[HTTPConnectionPool, str]:
    """The connection pool for ``base``'s host, and ``base``'s path (prefixed to every operation's).

    Holds up to ``http_pool_size`` kept-alive connections and never blocks for
    one (beyond it, a connection is made and dropped after its call); TLS is
    verified. Proxies from the environment are not consulted: nothing belongs
    between a worker and the API.
    """
    try:
        url = parse_url(base)
    except LocationValueError:
        raise LocationValueError("PAYQ_API_BASE_URL cannot be parsed as a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise LocationValueError("PAYQ_API_BASE_URL must be an http:// or https:// URL with a host")
    timeout = Timeout(connect=settings.http_connect_timeout, read=settings.http_read_timeout)
    pool: HTTPConnectionPool
    if url.scheme == "https":
        pool = HTTPSConnectionPool(url.host, url.port or 443, timeout=timeout, maxsize=settings.http_pool_size, block=False,
                                   retries=_NO_RETRIES, ca_certs=_CA_CERTS)
    else:
        pool = HTTPConnectionPool(url.host, url.port or 80, timeout=timeout, maxsize=settings.http_pool_size, block=False,
                                  retries=_NO_RETRIES)
    return pool, url.path or ""


def _detail(outcome: Outcome) -> str:
    if isinstance(outcome, Success):
        return ""
    delay = f" retry_after={outcome.delay:g}" if isinstance(outcome, RetryAfter) else ""
    return f"{delay} failure={outcome.failure.describe()[:300]!r}"
