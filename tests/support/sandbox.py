"""``SandboxProcess``: the sandbox payment API as a real subprocess, driven through its admin endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests

from tests.support.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
_START_ATTEMPTS = 3


class SandboxError(RuntimeError):
    """The sandbox did not start, or an admin call failed; the message carries its output."""


class SandboxProcess:
    """``python -m sandbox --port <free port> *args`` in a subprocess, ready once ``/admin/health`` answers.

    Use as a context manager, or call :meth:`stop`. ``args`` are extra CLI
    options, e.g. ``("--auto-register",)`` or ``("--faults", path)``.
    """

    def __init__(self, *args: str, port: int | None = None, startup_timeout: float = 60.0) -> None:
        self.args = tuple(args)
        self._session = requests.Session()
        self._session.trust_env = False  # a proxy from the environment must not sit between tests and 127.0.0.1
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - outlives __init__; closed by stop()
        attempts = 1 if port is not None else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self.port = port if port is not None else free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                cwd=REPO_ROOT,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                self._wait_ready(time.monotonic() + startup_timeout)
                return
            except SandboxError:
                self.kill()
                # The free port may have been taken between choosing and binding it: choose again.
                if attempt == attempts or "address already in use" not in self.output().lower():
                    self._session.close()
                    self._output.close()
                    raise

    def _wait_ready(self, deadline: float) -> None:
        while True:
            if self.process.poll() is not None:
                raise SandboxError(f"sandbox exited with {self.process.returncode} before it was ready:\n{self.output()}")
            try:
                if self._session.get(self.url + "/admin/health", timeout=0.5).ok:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SandboxError(f"sandbox not healthy on {self.url} in time:\n{self.output()}")
            time.sleep(0.02)  # poll interval, bounded by the deadline above

    def output(self) -> str:
        """Everything the process has written to stdout and stderr so far."""
        if self._output.closed:
            return ""
        self._output.flush()
        self._output.seek(0)
        return self._output.read().decode("utf-8", "replace")

    def _admin(self, method: str, route: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body)
        try:
            response = self._session.request(method, self.url + route, data=data, params=params, timeout=10)
        except requests.ConnectionError:
            # the server closes keep-alive connections idle for a minute; one fresh connection is enough
            response = self._session.request(method, self.url + route, data=data, params=params, timeout=10)
        if not response.ok:
            raise SandboxError(f"{method} {route} answered {response.status_code}: {response.text}")
        return response.json()

    def register_trip(self, store: str, trip: str, trip_time: float | None = None) -> None:
        """Make a trip known; ``trip_time`` (epoch seconds) defaults to now."""
        item: dict[str, Any] = {"storeId": store, "shoppingTripId": trip}
        if trip_time is not None:
            item["tripTime"] = trip_time
        self._admin("POST", "/admin/trips", item)

    def set_faults(self, script: dict[str, Any]) -> int:
        """Replace the fault script (and, if it has ``rate_limits``, the rate limits); returns the number of rules."""
        rules: int = self._admin("POST", "/admin/faults", script)["rules"]
        return rules

    def rate_limits(self) -> dict[str, Any]:
        """``GET /admin/rate-limits``: ``{"rate_limits": {in force}, "configured": {from --rate-limit}}``."""
        answer: dict[str, Any] = self._admin("GET", "/admin/rate-limits")
        return answer

    def notifications(self) -> list[dict[str, Any]]:
        """The outcome notifications the sandbox received as a webhook receiver (``GET /admin/notifications``), oldest first."""
        found: list[dict[str, Any]] = self._admin("GET", "/admin/notifications")["notifications"]
        return found

    def requests(self, path: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        """The request log, oldest first, optionally only one path or since an epoch time.

        Each entry has ``time`` (arrival, epoch seconds), ``status`` and
        ``rateLimited`` (a 429 from the rate limiter, not from a fault script).
        """
        params: dict[str, str] = {}
        if path is not None:
            params["path"] = path
        if since is not None:
            params["since"] = repr(since)
        entries: list[dict[str, Any]] = self._admin("GET", "/admin/requests", params=params)["requests"]
        return entries

    def ledger(self) -> list[dict[str, Any]]:
        """Every trip the sandbox knows, as ``GET /admin/ledger`` lists them."""
        trips: list[dict[str, Any]] = self._admin("GET", "/admin/ledger")["trips"]
        return trips

    def trip(self, store: str, trip: str) -> dict[str, Any]:
        """One trip's ledger entry; ``KeyError`` if the sandbox does not know it."""
        for entry in self.ledger():
            if entry["storeId"] == store and entry["shoppingTripId"] == trip:
                return entry
        raise KeyError((store, trip))

    def reset(self) -> None:
        """Clear the ledger, the fault script and the request log; the rate limits go back to the command line's."""
        self._admin("POST", "/admin/reset")

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._session.close()
        code = self.process.wait()
        self._output.close()
        return code

    def kill(self) -> None:
        """SIGKILL, no goodbye."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def most_in_one_second(times: Iterable[float]) -> int:
    """The most calls in any one-second window: the largest group of ``times`` all less than a second apart.

    The sandbox's rate limiter keeps this at or under R for the calls it
    accepted (request log entries with ``rateLimited`` false).
    """
    ordered = sorted(times)
    most, first = 0, 0
    for last, now in enumerate(ordered):
        while now - ordered[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most
