"""The plain ``celery -A workers.app worker`` runs the pool payq is measured with; ``-P`` and ``-c`` still win.

Without ``worker_pool`` in the app's configuration that command starts
Celery's prefork pool with one process per core (two API calls at a time on
two cores); payq's defaults, measurements and docker-compose are threads x 32.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import redis

from config.settings import Settings
from tasks.producer import Producer
from tests.support.jobs import wait_for_state
from tests.support.polling import wait_for
from tests.support.worker import WorkerProcess
from workers.app import create_app

THREADS = "celery.concurrency.thread:TaskPool"
PREFORK = "celery.concurrency.prefork:TaskPool"


def pool_of(settings: Settings, worker: WorkerProcess) -> tuple[str, int]:
    """The pool the running worker reports over remote control: (implementation, concurrency)."""
    node = f"{worker.name}@{socket.gethostname()}"
    app = create_app(settings)
    try:
        inspect = app.control.inspect(destination=[node], timeout=5)
        stats = wait_for(lambda: (inspect.stats() or {}).get(node), timeout=30, interval=0.5, what=f"{node} to answer inspect stats")
    finally:
        app.close()
    return stats["pool"]["implementation"], stats["pool"]["max-concurrency"]


def test_a_plain_worker_command_runs_the_threads_pool_with_the_configured_concurrency(
    settings: Settings, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(pool=None, concurrency=None, env={"PAYQ_WORKER_CONCURRENCY": "3"})

    assert pool_of(settings, worker) == (THREADS, 3)
    job_id = producer.enqueue_capture(storeId="s-plain", shoppingTripId="t1", amount={"amount": "1.00", "code": "USD"})
    wait_for_state(rdb, job_id, "succeeded")


@pytest.mark.parametrize(
    ("options", "env", "expected"),
    [
        # Celery 5.7 took an explicit -P prefork for its own default and ran the configured pool instead
        pytest.param({"pool": "prefork", "concurrency": None}, {"PAYQ_WORKER_CONCURRENCY": "2"}, (PREFORK, 2), id="P-prefork"),
        pytest.param({"pool": None, "concurrency": 5}, {"PAYQ_WORKER_CONCURRENCY": "3"}, (THREADS, 5), id="c-5"),
        pytest.param({"pool": "threads", "concurrency": None}, {"PAYQ_WORKER_POOL": "solo", "PAYQ_WORKER_CONCURRENCY": "4"},
                     (THREADS, 4), id="P-threads"),
    ],
)
def test_pool_and_concurrency_on_the_command_line_win_over_the_settings(
    settings: Settings, start_worker: Callable[..., WorkerProcess], options: dict[str, Any], env: dict[str, str],
    expected: tuple[str, int],
) -> None:
    worker = start_worker(env=env, **options)

    assert pool_of(settings, worker) == expected

