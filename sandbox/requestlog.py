"""The sandbox's memory of the API requests it received, bounded so a long run cannot eat the host."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class LoggedRequest:
    """One API request as it arrived; ``status`` is filled in once answered and stays ``None`` if it never was.

    ``rate_limited`` marks a 429 from the rate limiter, so a test can tell it
    from a scripted 429 and count the calls the limiter let through.
    """

    time: float
    method: str
    path: str
    headers: dict[str, str]
    body: str
    status: int | None = None
    rate_limited: bool = False

    def to_json(self) -> dict[str, Any]:
        """The entry as ``/admin/requests`` shows it."""
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
            "status": self.status,
            "rateLimited": self.rate_limited,
        }


class RequestLog:
    """The last ``limit`` requests, oldest dropped first."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the request log keeps at least one request")
        self._entries: deque[LoggedRequest] = deque(maxlen=limit)

    def record(self, time: float, method: str, path: str, headers: Mapping[str, str], body: bytes) -> LoggedRequest:
        """Keep a request; the returned entry is updated in place when the answer goes out."""
        entry = LoggedRequest(time, method, path, dict(headers), body.decode("utf-8", "replace"))
        self._entries.append(entry)
        return entry

    def entries(self, path: str | None = None, since: float | None = None) -> list[LoggedRequest]:
        """Requests in arrival order, optionally only those to ``path`` or arriving at or after ``since``."""
        return [
            e for e in self._entries
            if (path is None or e.path == path) and (since is None or e.time >= since)
        ]

    def clear(self) -> None:
        """Forget every request."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
