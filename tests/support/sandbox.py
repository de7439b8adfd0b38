"""``SandboxProcess``: the sandbox payment API as a real subprocess, driven through its admin endpoints."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import requests

from tests.support.http_process import HttpProcess

REPO_ROOT = Path(__file__).resolve().parents[2]


class SandboxError(RuntimeError):
    """An admin call failed; the message carries the answer."""


class SandboxProcess(HttpProcess):
    """``python -m sandbox --port <free port> *args`` in a subprocess, ready once ``/admin/health`` answers.

    Use as a context manager, or call :meth:`stop`. ``args`` are extra CLI
    options, e.g. ``("--auto-register",)`` or ``("--faults", path)``.
    """

    name = "sandbox"

    def __init__(self, *args: str, startup_timeout: float = 60.0) -> None:
        self.args = tuple(args)
        super().__init__(lambda port: [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port), *self.args],
                         {**os.environ, "PYTHONUNBUFFERED": "1"}, "/admin/health", cwd=REPO_ROOT,
                         startup_timeout=startup_timeout, stop_timeout=5.0)

    def _admin(self, method: str, route: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body)
        try:
            response = self.session.request(method, self.url + route, data=data, params=params, timeout=10)
        except requests.ConnectionError:
            # the server closes keep-alive connections idle for a minute; one fresh connection is enough
            response = self.session.request(method, self.url + route, data=data, params=params, timeout=10)
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
