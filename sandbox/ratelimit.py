"""Rate limits per endpoint: at most R accepted calls in any one-second window; past it, 429 with Retry-After.

The limiter stands where an API gateway would: after the signature check (a
request refused 403 never reached it, so it is not counted) and before the
fault script and the latency (a refused call consumes no fault, waits no
latency and never reaches the ledger). Every call it lets through counts
against its endpoint's window, however the service then answers it, fault or
not; a refused call does not count.

Pure: the caller passes each call's arrival time. The server passes the very
reading the request log records, so the log can prove the limit: sorted
accepted times ``t`` of one endpoint always have ``t[i + R] - t[i] >= 1``.

The limits are written ``capture=30`` or ``feedback=30:2`` on the command line
(:func:`parse_spec`) and ``{"capture": {"per_second": 30, "retry_after": 2}}``
(or just ``{"capture": 30}``) in a fault script (:func:`parse_limits`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from payapi.operations import API_OPERATIONS, Operation

WINDOW_SECONDS = 1.0
DEFAULT_RETRY_AFTER = 1  # seconds; the real API sends a whole number of seconds (600 today)
SPEC_FORM = "ENDPOINT=PER_SECOND[:RETRY_AFTER]"
_ENDPOINTS = ", ".join(op.value for op in API_OPERATIONS)
_LIMIT_KEYS = {"per_second", "retry_after"}


class RateLimitError(ValueError):
    """A rate limit that cannot be used; the message says where (``rate_limits.capture``) and why."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``per_second`` accepted calls in any one-second window; past it, 429 with ``Retry-After: retry_after``."""

    per_second: int
    retry_after: int = DEFAULT_RETRY_AFTER

    def to_json(self) -> dict[str, int]:
        """The limit as a fault script writes it, and as ``/admin/rate-limits`` shows it."""
        return {"per_second": self.per_second, "retry_after": self.retry_after}


RateLimits = Mapping[Operation, RateLimit]
"""The limit of each limited endpoint; an endpoint not in it is not limited."""


def limits_to_json(limits: RateLimits) -> dict[str, dict[str, int]]:
    """``{"capture": {"per_second": 30, "retry_after": 1}, ...}``, in the operations table's order."""
    return {op.value: limits[op].to_json() for op in API_OPERATIONS if op in limits}


class RateLimiter:
    """Decides, call by call, whether each endpoint is within its limit; one deque of accept times per endpoint.

    Accept times are kept for every endpoint, limited or not, for the last
    second only, so a limit set or lowered mid-run counts the calls already
    accepted: changing the limits never lets a window exceed the new limit.
    """

    def __init__(self, limits: RateLimits | None = None) -> None:
        self._limits: dict[Operation, RateLimit] = dict(limits or {})
        self._accepted: dict[Operation, deque[float]] = {op: deque() for op in API_OPERATIONS}

    @property
    def limits(self) -> RateLimits:
        """The limits in force."""
        return dict(self._limits)

    def configure(self, limits: RateLimits) -> None:
        """Put ``limits`` in force instead of the current ones; the calls already accepted still count."""
        self._limits = dict(limits)

    def admit(self, endpoint: Operation, now: float) -> RateLimit | None:
        """``None``: the call is accepted and counted. Otherwise the limit it is refused by; it is not counted.

        Amortised O(1): each accept time is appended once and dropped once.
        A clock stepping backwards keeps older times in the window longer,
        so it can only make the limiter stricter, never let a burst through.
        """
        window = self._accepted[endpoint]
        while window and now - window[0] >= WINDOW_SECONDS:
            window.popleft()
        limit = self._limits.get(endpoint)
        if limit is not None and len(window) >= limit.per_second:
            return limit
        window.append(now)
        return None

    def clear(self) -> None:
        """Forget every accepted call (the limits stay)."""
        for window in self._accepted.values():
            window.clear()


def _endpoint(name: Any, where: str) -> Operation:
    for operation in API_OPERATIONS:
        if name == operation.value:
            return operation
    raise RateLimitError(f"{where}: unknown endpoint {name!r} (expected one of {_ENDPOINTS})")


def _whole(value: Any, where: str, name: str, minimum: int) -> int:
    # digits in a string are accepted too: the command line and hand-written JSON both produce them
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RateLimitError(f"{where}: {name} must be a whole number, {minimum} or more, got {value!r}")
    return value


def _limit(per_second: Any, retry_after: Any, where: str) -> RateLimit:
    return RateLimit(
        per_second=_whole(per_second, where, "per_second", 1),
        retry_after=_whole(retry_after, where, "retry_after", 0),  # 0: "retry at once", the client's floor decides
    )


def parse_spec(text: str) -> tuple[Operation, RateLimit]:
    """Parse one command-line limit, ``capture=30`` or ``feedback=30:2`` (Retry-After 2 s)."""
    name, equals, value = text.partition("=")
    if not equals:
        raise RateLimitError(f"{text}: expected {SPEC_FORM}, e.g. capture=30 or feedback=30:2")
    endpoint = _endpoint(name.strip(), text)
    per_second, colon, retry_after = value.partition(":")
    return endpoint, _limit(per_second, retry_after if colon else DEFAULT_RETRY_AFTER, text)


def parse_limits(data: Any, where: str = "rate_limits") -> dict[Operation, RateLimit]:
    """Parse a fault script's ``rate_limits``: endpoint → ``{"per_second": R, "retry_after": N}`` or just ``R``."""
    if not isinstance(data, dict):
        raise RateLimitError(f'{where} must be an object of endpoints to limits, e.g. {{"capture": {{"per_second": 30}}}}')
    limits: dict[Operation, RateLimit] = {}
    for name, value in data.items():
        endpoint = _endpoint(name, where)
        here = f"{where}.{name}"
        if isinstance(value, dict):
            unknown = sorted(set(value) - _LIMIT_KEYS)
            if unknown:
                raise RateLimitError(f"{here}: unknown key(s) {', '.join(unknown)} (a limit has per_second and retry_after)")
            if "per_second" not in value:
                raise RateLimitError(f"{here}: per_second is required")
            limits[endpoint] = _limit(value["per_second"], value.get("retry_after", DEFAULT_RETRY_AFTER), here)
        elif isinstance(value, int) and not isinstance(value, bool):
            limits[endpoint] = _limit(value, DEFAULT_RETRY_AFTER, here)
        else:
            raise RateLimitError(f'{here}: a limit is an object {{"per_second": R, "retry_after": N}} or a number R')
    return limits


def most_in_one_second(times: Iterable[float]) -> int:
    """The most calls in any one-second window: the largest group of ``times`` all less than a second apart.

    The measure :class:`RateLimiter` keeps at or under R for the calls it
    accepted (request log entries with ``rateLimited`` false); tests and
    benchmarks read it off a request log.
    """
    ordered = sorted(times)
    most, first = 0, 0
    for last, now in enumerate(ordered):
        while now - ordered[first] >= WINDOW_SECONDS:
            first += 1
        most = max(most, last - first + 1)
    return most
