"""``HttpProcess``: a server the tests start on a free port, ready once a health URL answers (the sandbox, Flower, ``payq serve``)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import requests

from tests.support.ports import free_port

_START_ATTEMPTS = 3


class HttpProcess:
    """``argv(port)`` in a subprocess on a free port, ready once ``health_path`` answers 2xx.

    The free port may be taken between choosing and binding it, so a start that
    fails with "address already in use" chooses again. :attr:`session` never
    goes through a proxy. Use as a context manager, or call :meth:`stop`.
    """

    name = "server"

    def __init__(self, argv: Callable[[int], list[str]], env: dict[str, str], health_path: str, *,
                 cwd: Path | str | None = None, startup_timeout: float = 30.0, stop_timeout: float = 10.0) -> None:
        self.stop_timeout = stop_timeout
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy between the test and 127.0.0.1
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.process = subprocess.Popen(argv(self.port), cwd=cwd, env=env, stdout=self._output, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
            if self._wait_ready(health_path, time.monotonic() + startup_timeout):
                return
            self.kill()
            if attempt == _START_ATTEMPTS or "address already in use" not in self.output().lower():
                output = self.output()
                self.stop()
                raise RuntimeError(f"{self.name} did not start (exit code {self.process.returncode}):\n{output[-3000:]}")

    def _wait_ready(self, health_path: str, deadline: float) -> bool:
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                if self.session.get(self.url + health_path, timeout=1).ok:
                    return True
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or listening and still starting (a loaded machine): ask again until the deadline
            time.sleep(0.05)  # poll interval, bounded by the deadline
        return False

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

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after ``stop_timeout``, and release its files; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.session.close()
        self._output.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
