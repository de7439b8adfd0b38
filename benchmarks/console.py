"""Scenario 6: the console's dead-letter list with 10,000 entries, its first page over HTTP from a real ``payq serve``.

Entries are written with ``DeadLetterStore.add``, the way workers write them.
Three pages are timed, each as a browser asks for it (basic auth, a fresh
request): the list unfiltered (a count and one page from the time index),
filtered by reason (every entry read and filtered), and a search for one trip.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from benchmarks.figures import summary_ms
from benchmarks.processes import ServeProc
from benchmarks.stack import Stack
from config.settings import Settings
from payapi.operations import OPERATIONS, Operation
from payapi.outcomes import Failure, FailureKind
from tasks.states import DeadLetterReason
from tasks.store.deadletters import DeadLetter
from tasks.stores import Stores

_AUTH = ("bench", "bench-console-pass")
_REASONS = (DeadLetterReason.PERMANENT, DeadLetterReason.RETRIES_EXHAUSTED, DeadLetterReason.INTERNAL_ERROR)
_FAILURES = {
    DeadLetterReason.PERMANENT: Failure(FailureKind.REFUSED, 400, "BadRequestException", "UnknownShoppingTrip"),
    DeadLetterReason.RETRIES_EXHAUSTED: Failure(FailureKind.SERVER_ERROR, 503, error_msg="Service Unavailable"),
    DeadLetterReason.INTERNAL_ERROR: Failure(FailureKind.INTERNAL, None, "KeyError", detail="KeyError: 'amount'"),
}


def run_console(stack: Stack, entries: int, requests_each: int = 40, say: Any = print) -> dict[str, Any]:
    """Seed ``entries`` dead letters, start ``payq serve`` with the console on, time ``requests_each`` GETs of each page."""
    stack.client.flushall()
    settings = Settings(redis_url=stack.redis_url)
    rt = Stores.build(settings)
    started = time.perf_counter()
    now = time.time()
    for i in range(entries):
        operation = (Operation.CAPTURE, Operation.CANCEL)[i % 2]
        reason = _REASONS[i % len(_REASONS)]
        kwargs = {"storeId": f"store-{i % 7}", "shoppingTripId": f"trip-{i:06d}", "amount": {"amount": "12.34", "code": "USD"}}
        rt.dead_letters.add(DeadLetter.of(
            _FAILURES[reason], id=OPERATIONS[operation].job_id(kwargs), operation=operation, task=OPERATIONS[operation].task,
            kwargs=kwargs, reason=reason, attempts=8 if reason is DeadLetterReason.RETRIES_EXHAUSTED else 1,
            first_attempt_at=now - i - 60, last_attempt_at=now - i, dead_at=now - i, worker="bench@host",
        ))
    seed_s = time.perf_counter() - started
    say(f"console: {entries:,} dead letters written in {seed_s:.1f} s; timing the list's first page")
    pages = {
        "unfiltered": "/console/dead-letters",
        "by_reason": "/console/dead-letters?reason=permanent",
        "search": f"/console/dead-letters?q=trip-{entries // 2:06d}",
    }
    serve = _Serve(stack.redis_url)
    try:
        timings: dict[str, list[float]] = {name: [] for name in pages}
        for path in pages.values():
            text = serve.get(path).text  # warm: the console is built, Redis connected, scripts loaded
            assert "dead-letters" in text and "Entries 1" in text, f"{path} did not list entries"
        for _ in range(requests_each):
            for name, path in pages.items():
                began = time.perf_counter()
                answer = serve.get(path)
                timings[name].append(time.perf_counter() - began)
                assert answer.status_code == 200
    finally:
        serve.stop()
        rt.redis.close()
        stack.client.flushall()
    return {"entries": entries, "seed_s": round(seed_s, 2), **{name: summary_ms(values) for name, values in timings.items()}}


class _Serve(ServeProc):
    """``payq serve`` with the console on, against the benchmark's Redis."""

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url, {"PAYQ_CONSOLE_BASIC_AUTH": ":".join(_AUTH)})

    def get(self, path: str) -> requests.Response:
        """One GET with the console's credentials, on a fresh connection as a browser's first request would be."""
        return self.session.get(self.url + path, auth=_AUTH, timeout=30, headers={"Connection": "close"})
