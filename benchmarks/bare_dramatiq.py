"""The fastest peer measured here: the same HTTP POST as a Dramatiq actor on Redis.

``dramatiq benchmarks.bare_dramatiq -p 2 -t 8`` with ``BENCH_REDIS_URL`` and
``BENCH_API_URL`` set; stock Dramatiq middleware, no retries.
"""

from __future__ import annotations

import os

import dramatiq
import requests
from dramatiq.brokers.redis import RedisBroker
from requests.adapters import HTTPAdapter

QUEUE = "default"

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)

_BASE = os.environ.get("BENCH_API_URL", "http://127.0.0.1:8080").rstrip("/")
_session = requests.Session()
_session.trust_env = False
_session.mount("http://", HTTPAdapter(pool_maxsize=int(os.environ.get("BENCH_HTTP_POOL", "64")), max_retries=0))


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def post(path: str, body: str) -> None:
    """POST ``body`` to ``path`` on the API."""
    _session.post(_BASE + path, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=(3.0, 10.0))
