"""``FlowerProcess``: ``celery -A workers.app flower`` on a free port, with basic auth from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import requests

from tests.support.ports import free_port
from tests.support.worker import REPO_ROOT

_START_ATTEMPTS = 3


class FlowerProcess:
    """Flower for payq's app, ready once ``/healthcheck`` answers; ``auth`` is ``(user, password)``.

    The credentials go in ``FLOWER_BASIC_AUTH`` (Flower reads its options from
    ``FLOWER_*``), never on the command line, as the local stack does it.
    Flower's options are tornado options: ``--port=N``, not ``--port N``.
    """

    def __init__(self, redis_url: str, auth: tuple[str, str] = ("user", "pass"), startup_timeout: float = 30.0) -> None:
        self.auth = auth
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy between the test and 127.0.0.1
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers.app", "flower", f"--port={self.port}", "--address=127.0.0.1"],
                cwd=REPO_ROOT, stdout=self._output, stderr=subprocess.STDOUT,
                env={**os.environ, "PAYQ_REDIS_URL": redis_url, "FLOWER_BASIC_AUTH": ":".join(auth), "PYTHONUNBUFFERED": "1"},
            )
            if self._wait_ready(time.monotonic() + startup_timeout):
                return
            self.kill()
            # the free port may have been taken between choosing and binding it: choose again
            if attempt == _START_ATTEMPTS or "address already in use" not in self.output().lower():
                raise RuntimeError(f"flower did not start:\n{self.output()[-3000:]}")

    def _wait_ready(self, deadline: float) -> bool:
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                if self.session.get(self.url + "/healthcheck", timeout=1).ok:
                    return True
            except requests.ConnectionError:
                pass
            time.sleep(0.05)  # poll interval, bounded by the deadline
        return False

    def get(self, path: str, *, login: bool = True, **params: str) -> requests.Response:
        """GET ``path`` with (or without) the basic-auth credentials."""
        return self.session.get(self.url + path, params=params, auth=self.auth if login else None, timeout=10)

    def output(self) -> str:
        """What Flower printed so far."""
        self._output.flush()
        self._output.seek(0)
        return self._output.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop Flower and release its files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.session.close()
        self._output.close()
