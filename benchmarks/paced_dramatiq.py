"""The Dramatiq peer of the pacing scenario: a capture, its report and a cancel, each an actor making the API's POST.

``dramatiq benchmarks.paced_dramatiq -p 2 -t 8`` with ``BENCH_REDIS_URL``, ``BENCH_API_URL`` and
``BENCH_RATE_LIMIT`` (calls per second per endpoint, e.g. ``30``) set. Stock Dramatiq, its rate
limiter used the way its documentation's cookbook does ("Rate Limiting"):

- **The limit** is a :class:`dramatiq.rate_limits.WindowRateLimiter` per endpoint (``limit=R``,
  ``window=1`` second) on a Redis backend (the broker's Redis), shared by every worker process:
  the capture and the report actor POST inside ``with LIMITER.acquire():``. Its windows are whole
  seconds of the workers' clock (with ``window=1``, one counter per second), so up to R calls go
  out at the start of each second: an API that counts any sliding second can see more than R.
- **Over the limit**, ``acquire()`` raises ``RateLimitExceeded`` and Dramatiq's ``Retries``
  middleware retries the message with its exponential backoff, jittered: the actors set
  ``min_backoff`` to the limiter's window (1 s; the default 15 s would leave the limiter idle)
  and ``max_backoff`` to 5 s, and ``max_retries=None`` so no message is ever dropped. No worker
  thread waits for the limiter.
- **A 429** raises ``dramatiq.Retry(delay=Retry-After)``: the message again after that delay;
  Dramatiq knows nothing else about the 429.
- **A captured trip chains its report** (``report.send``), as payq chains one. Each actor has its own queue.
"""

from __future__ import annotations

import os

import dramatiq
import requests
from dramatiq.brokers.redis import RedisBroker
from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend
from requests.adapters import HTTPAdapter

from benchmarks.calls import CANCEL, CAPTURE, FEEDBACK

CAPTURE_QUEUE = "paced-capture"
REPORT_QUEUE = "paced-feedback"
CANCEL_QUEUE = "paced-cancel"
MIN_BACKOFF_MS = 1000  # the limiter's window: sooner, a message would only find the same full window
MAX_BACKOFF_MS = 5000

_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
broker = RedisBroker(url=_URL)  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)
_backend = RedisBackend(url=_URL)
RATE = int(os.environ.get("BENCH_RATE_LIMIT", "30"))
CAPTURE_LIMITER = WindowRateLimiter(_backend, "bench-paced-capture", limit=RATE, window=1)  # type: ignore[no-untyped-call]
REPORT_LIMITER = WindowRateLimiter(_backend, "bench-paced-feedback", limit=RATE, window=1)  # type: ignore[no-untyped-call]

_BASE = os.environ.get("BENCH_API_URL", "http://127.0.0.1:8080").rstrip("/")
_session = requests.Session()
_session.trust_env = False
_session.mount("http://", HTTPAdapter(pool_maxsize=int(os.environ.get("BENCH_HTTP_POOL", "64")), max_retries=0))


def _post(path: str, body: str) -> requests.Response:
    response = _session.post(_BASE + path, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=(3.0, 10.0))
    if response.status_code == 429:
        raise dramatiq.Retry("429 Too Many Requests", delay=int(float(response.headers.get("Retry-After") or 1) * 1000))
    return response


@dramatiq.actor(queue_name=REPORT_QUEUE, max_retries=None, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS)
def report(body: str) -> None:
    """The payment-status report of a captured trip, within the report endpoint's limit."""
    with REPORT_LIMITER.acquire():
        _post(FEEDBACK, body)


@dramatiq.actor(queue_name=CAPTURE_QUEUE, max_retries=None, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS)
def capture(body: str, report_body: str) -> None:
    """Capture within the capture endpoint's limit; on 200, chain the trip's report."""
    with CAPTURE_LIMITER.acquire():
        response = _post(CAPTURE, body)
    if response.status_code == 200:
        report.send(report_body)


@dramatiq.actor(queue_name=CANCEL_QUEUE, max_retries=0)
def cancel(body: str) -> None:
    """A cancel: an endpoint without a limit (the scenario's fresh jobs)."""
    _post(CANCEL, body)
