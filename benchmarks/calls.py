"""What the API received: the sandbox's request log, read incrementally so polling costs the sandbox little.

Arrival times come from the sandbox's clock (``time.time()`` on this machine),
the same clock the benchmark stamps enqueues with.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import requests

from payapi.operations import Operation, api_path

UNANSWERED_FINAL = 30.0  # seconds after its arrival a call without an answer is taken as never answered

CAPTURE = api_path(Operation.CAPTURE)
CANCEL = api_path(Operation.CANCEL)
FEEDBACK = api_path(Operation.FEEDBACK)


@dataclass(frozen=True, slots=True)
class Call:
    """One API request as the sandbox logged it."""

    time: float
    path: str
    trip: str
    status: int | None


class CallLog:
    """Everything the sandbox at ``url`` has logged since :meth:`reset`, fetched a slice at a time."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False
        self.calls: list[Call] = []
        self._since = 0.0
        self._seen_at_since = 0
        self._open_from = 0  # no call before this index is waiting for its status

    def reset(self) -> None:
        """Clear the sandbox's ledger, faults and log, and forget what was read."""
        self.session.post(self.url + "/admin/reset", timeout=30).raise_for_status()
        self.calls = []
        self._since = 0.0
        self._seen_at_since = 0
        self._open_from = 0

    def set_faults(self, script: dict[str, object]) -> None:
        """Replace the sandbox's fault script."""
        self.session.post(self.url + "/admin/faults", data=json.dumps(script), timeout=10).raise_for_status()

    def poll(self) -> int:
        """Fetch entries logged since the last poll; returns how many are known now.

        An entry is logged when its call arrives and gets its status once answered: a call read
        while still unanswered (``status`` None) is read again, with everything after it, on the
        next poll, until it has its status or has gone unanswered for :data:`UNANSWERED_FINAL` seconds.
        """
        since, keep = self._since, None
        first_open = self._first_open()
        if first_open is not None:
            since = self.calls[first_open].time
            keep = first_open
            while keep > 0 and self.calls[keep - 1].time >= since:  # ``since`` is inclusive: those are read again too
                keep -= 1
        response = self.session.get(self.url + "/admin/requests", params={"since": repr(since)}, timeout=60)
        response.raise_for_status()
        entries = response.json()["requests"]
        fresh = entries
        if keep is not None:
            del self.calls[keep:]
        elif entries and entries[0]["time"] == self._since:
            # ``since`` is inclusive: skip the ones at that instant read last time
            fresh = entries[self._seen_at_since:]
        for entry in fresh:
            try:
                trip = json.loads(entry["body"]).get("shoppingTripId", "")
            except ValueError:
                trip = ""
            self.calls.append(Call(entry["time"], entry["path"], trip, entry["status"]))
        if entries:
            last = entries[-1]["time"]
            self._seen_at_since = sum(1 for e in entries if e["time"] == last)
            self._since = last
        return len(self.calls)

    def _first_open(self) -> int | None:
        """The index of the first call read before it was answered, if one arrived less than UNANSWERED_FINAL s ago."""
        cutoff = time.time() - UNANSWERED_FINAL
        index = self._open_from
        while index < len(self.calls):
            call = self.calls[index]
            if call.status is None and call.time >= cutoff:
                break
            index += 1
        self._open_from = index
        return index if index < len(self.calls) else None

    def wait_for(self, count: int, timeout: float, *, interval: float = 0.5, stall: float = 60.0,
                 progress: Callable[[int], None] | None = None, paths: tuple[str, ...] = ()) -> bool:
        """Poll until ``count`` calls (to ``paths``, if given) are logged; False on ``timeout`` or ``stall`` seconds without one."""
        deadline = time.monotonic() + timeout
        last_change, last_seen = time.monotonic(), -1
        while True:
            total = self.poll()
            seen = sum(1 for c in self.calls if c.path in paths) if paths else total
            if progress is not None:
                progress(seen)
            if seen >= count:
                return True
            now = time.monotonic()
            if seen != last_seen:
                last_change, last_seen = now, seen
            if now > deadline or now - last_change > stall:
                return False
            time.sleep(interval)

    def settle(self, quiet: float = 1.0, timeout: float = 30.0) -> int:
        """Poll until nothing new arrives for ``quiet`` seconds (late duplicates would show here)."""
        deadline = time.monotonic() + timeout
        seen = self.poll()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now_seen = self.poll()
            if now_seen == seen:
                break
            seen = now_seen
        return seen

    def on(self, path: str) -> list[Call]:
        """Calls to one endpoint, in arrival order."""
        return [c for c in self.calls if c.path == path]

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


def drain_rate(calls: list[Call]) -> tuple[float, float]:
    """(jobs per second from first to last arrival, seconds between them)."""
    if len(calls) < 2:
        return 0.0, 0.0
    times = sorted(c.time for c in calls)
    span = times[-1] - times[0]
    return ((len(times) - 1) / span if span > 0 else 0.0), span


def repeats(calls: list[Call], expected: dict[str, int]) -> dict[str, int]:
    """Per endpoint path: calls beyond the expected number per trip (``expected[path]``), summed over trips."""
    extra: dict[str, int] = {}
    for path, per_trip in expected.items():
        counts = Counter(c.trip for c in calls if c.path == path)
        extra[path] = sum(max(0, n - per_trip) for n in counts.values())
    return extra


def missing(calls: list[Call], path: str, trips: set[str]) -> int:
    """Trips in ``trips`` with no call to ``path``."""
    return len(trips - {c.trip for c in calls if c.path == path})
