"""``ServeProcess``: the real ``payq serve`` on a free port, ready once ``/healthz`` answers."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from typing import Any

import requests

from tests.support.payq_cli import PAYQ
from tests.support.ports import free_port

_START_ATTEMPTS = 3


class ServeProcess:
    """``payq serve --port <free port>`` against ``redis_url``; ``env`` adds ``PAYQ_*`` settings (tokens, console auth, ...).

    Use as a context manager, or call :meth:`stop`. :attr:`session` is a
    ``requests`` session that never goes through a proxy.
    """

    def __init__(self, redis_url: str, env: dict[str, str] | None = None, startup_timeout: float = 60.0) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        base = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
        self.env = {**base, "PAYQ_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **(env or {})}
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.process = subprocess.Popen(
                [str(PAYQ), "serve", "--host", "127.0.0.1", "--port", str(self.port)], env=self.env, cwd=tempfile.gettempdir(),
                stdout=self._output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            if self._wait_ready(time.monotonic() + startup_timeout):
                return
            self.kill()
            # the free port may have been taken between choosing and binding it: choose again
            if attempt == _START_ATTEMPTS or "address already in use" not in self.output().lower():
                raise RuntimeError(f"payq serve did not start:\n{self.output()[-3000:]}")

    def _wait_ready(self, deadline: float) -> bool:
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                if self.session.get(self.url + "/healthz", timeout=1).ok:
                    return True
            except requests.ConnectionError:
                pass
            time.sleep(0.05)  # poll interval, bounded by the deadline
        return False

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to ``path`` (``timeout`` defaults to 10 s)."""
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url + path, **kwargs)

    def output(self) -> str:
        """What the process printed so far."""
        if self._output.closed:
            return ""
        self._output.flush()
        self._output.seek(0)
        return self._output.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and release its files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.session.close()
        self._output.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
