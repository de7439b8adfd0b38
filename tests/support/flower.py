"""``FlowerProcess``: ``celery -A workers.app flower`` on a free port, with basic auth from the environment."""

from __future__ import annotations

import os
import re
import sys

import requests

from tests.support.http_process import HttpProcess
from tests.support.polling import wait_for
from tests.support.worker import REPO_ROOT, WorkerProcess


class FlowerProcess(HttpProcess):
    """Flower for payq's app, ready once ``/healthcheck`` answers; ``auth`` is ``(user, password)``.

    The credentials go in ``FLOWER_BASIC_AUTH`` (Flower reads its options from
    ``FLOWER_*``), never on the command line, as the local stack does it.
    Flower's options are tornado options: ``--port=N``, not ``--port N``.
    """

    name = "flower"

    def __init__(self, redis_url: str, auth: tuple[str, str] = ("user", "pass"), startup_timeout: float = 30.0) -> None:
        self.auth = auth
        super().__init__(
            lambda port: [sys.executable, "-m", "celery", "-A", "workers.app", "flower", f"--port={port}", "--address=127.0.0.1"],
            {**os.environ, "PAYQ_REDIS_URL": redis_url, "FLOWER_BASIC_AUTH": ":".join(auth), "PYTHONUNBUFFERED": "1"},
            "/healthcheck", cwd=REPO_ROOT, startup_timeout=startup_timeout, stop_timeout=5,
        )

    def get(self, path: str, *, login: bool = True, **params: str) -> requests.Response:
        """GET ``path`` with (or without) the basic-auth credentials."""
        return self.session.get(self.url + path, params=params, auth=self.auth if login else None, timeout=10)


def wait_until_watched(flower: FlowerProcess, worker: WorkerProcess, timeout: float = 60) -> None:
    """Wait until Flower has heard from ``worker`` and turned its task events on (off by default; Flower's ``--enable-events``).

    Flower only sees events sent after both: a job run before would be missing from it.
    """
    wait_for(lambda: re.search(rf'flower_worker_online\{{worker="{worker.name}@[^"]+"\}} 1\.0', flower.get("/metrics", login=False).text),
             timeout=timeout, what="Flower to see the worker")
    wait_for(lambda: "Events of group {task} enabled by remote" in worker.log(), timeout=timeout,
             what="Flower to turn the worker's task events on")
