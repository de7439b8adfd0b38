"""The bare Celery peer of the pacing scenario: a capture, its report and a cancel, each a task making the API's POST.

``celery -A benchmarks.paced_celery worker -Q bare.paced.capture,bare.paced.feedback,bare.paced.cancel`` with
``BENCH_REDIS_URL``, ``BENCH_API_URL`` and ``BENCH_RATE_LIMIT`` set. Stock Celery settings, used the way its
documentation has it:

- **The limit** is Celery's ``rate_limit`` task option on the capture and the report task
  (``BENCH_RATE_LIMIT``, e.g. ``7.5/s``). It is a token bucket in each worker process, not shared:
  the scenario gives each process R divided by the number of processes. A message over the rate
  waits in its worker's memory, holding one of the worker's prefetch slots. Cancels have no limit.
- **A 429** is retried with ``self.retry(countdown=Retry-After)`` (the tasks' ``max_retries=None``:
  no limit): the same task, published again with an ETA, so no call is lost; Celery knows nothing else about the 429 (no
  pause for the other workers, no slower rate).
- **A captured trip chains its report** (``report.apply_async``), as payq chains one.
- Each task has its own queue (``task_routes``), as Celery's documentation advises for rate-limited tasks.
"""

from __future__ import annotations

import os
from typing import Any

import requests
from celery import Celery
from requests.adapters import HTTPAdapter

from benchmarks.calls import CANCEL, CAPTURE, FEEDBACK

CAPTURE_TASK = CAPTURE_QUEUE = "bare.paced.capture"
REPORT_TASK = REPORT_QUEUE = "bare.paced.feedback"
CANCEL_TASK = CANCEL_QUEUE = "bare.paced.cancel"
QUEUES = (CAPTURE_QUEUE, REPORT_QUEUE, CANCEL_QUEUE)

app = Celery("bare-paced", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True, worker_hijack_root_logger=True, task_default_queue=CANCEL_QUEUE,
    task_routes={CAPTURE_TASK: {"queue": CAPTURE_QUEUE}, REPORT_TASK: {"queue": REPORT_QUEUE}, CANCEL_TASK: {"queue": CANCEL_QUEUE}},
)
RATE_LIMIT = os.environ.get("BENCH_RATE_LIMIT") or None  # per worker process, Celery's own notation: "7.5/s"

_BASE = os.environ.get("BENCH_API_URL", "http://127.0.0.1:8080").rstrip("/")
_session = requests.Session()
_session.trust_env = False
_session.mount("http://", HTTPAdapter(pool_maxsize=int(os.environ.get("BENCH_HTTP_POOL", "64")), max_retries=0))


def _post(path: str, body: str) -> requests.Response:
    return _session.post(_BASE + path, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=(3.0, 10.0))


def _retry_on_429(task: Any, response: requests.Response) -> None:
    """A 429: the same task again after Retry-After (whole seconds, as the sandbox sends it)."""
    if response.status_code == 429:
        raise task.retry(countdown=float(response.headers.get("Retry-After") or 1))


@app.task(name=CAPTURE_TASK, bind=True, rate_limit=RATE_LIMIT, max_retries=None)  # type: ignore[untyped-decorator]
def capture(self: Any, body: str, report_body: str) -> int:
    """Capture; on 200, chain the trip's report."""
    response = _post(CAPTURE, body)
    _retry_on_429(self, response)
    if response.status_code == 200:
        report.apply_async((report_body,))
    return response.status_code


@app.task(name=REPORT_TASK, bind=True, rate_limit=RATE_LIMIT, max_retries=None)  # type: ignore[untyped-decorator]
def report(self: Any, body: str) -> int:
    """The payment-status report of a captured trip."""
    response = _post(FEEDBACK, body)
    _retry_on_429(self, response)
    return response.status_code


@app.task(name=CANCEL_TASK)  # type: ignore[untyped-decorator]
def cancel(body: str) -> int:
    """A cancel: an endpoint without a limit (the scenario's fresh jobs)."""
    return _post(CANCEL, body).status_code
