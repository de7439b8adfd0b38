"""The floor payq adds its work to: a Celery task that only makes the API's HTTP POST.

``celery -A benchmarks.bare_celery worker`` with ``BENCH_REDIS_URL`` and
``BENCH_API_URL`` set. Stock Celery settings (no events, early acks, prefetch
4), except ``BENCH_PAYQ_CELERY_CONFIG=1``, which applies payq's own Celery
configuration instead, to tell the cost of Celery settings from the cost of
payq's code.
"""

from __future__ import annotations

import os

import requests
from celery import Celery
from requests.adapters import HTTPAdapter

QUEUE = "bare.post"
TASK = "bare.post"

app = Celery("bare", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(task_ignore_result=True, task_default_queue=QUEUE, worker_hijack_root_logger=True)
if os.environ.get("BENCH_PAYQ_CELERY_CONFIG") == "1":
    from config.celery import celery_config
    from config.settings import Settings

    conf = celery_config(Settings(redis_url=app.conf.broker_url), [QUEUE], {TASK: QUEUE})
    conf.update(task_queues=None, task_routes=None, task_default_queue=QUEUE)
    app.conf.update(conf)

_BASE = os.environ.get("BENCH_API_URL", "http://127.0.0.1:8080").rstrip("/")
_session = requests.Session()
_session.trust_env = False
_session.mount("http://", HTTPAdapter(pool_maxsize=int(os.environ.get("BENCH_HTTP_POOL", "64")), max_retries=0))


@app.task(name=TASK)  # type: ignore[untyped-decorator]
def post(path: str, body: str) -> int:
    """POST ``body`` to ``path`` on the API; the status code, for the record."""
    response = _session.post(_BASE + path, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=(3.0, 10.0))
    return response.status_code


def _apply_tweaks() -> None:
    from benchmarks.tweaks import apply

    apply(app, [name for name in os.environ.get("BENCH_TWEAKS", "").split(",") if name and name in ("events-off", "prefetch-4", "kombu-client-reuse")])


_apply_tweaks()
