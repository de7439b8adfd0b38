"""What one running sandbox holds: the ledger, the fault script and rate limits in force, the request log and its settings."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sandbox.faults import FaultScript
from sandbox.ledger import Ledger
from sandbox.ratelimit import RateLimiter, RateLimits
from sandbox.receiver import Inbox
from sandbox.requestlog import RequestLog

Verifier = Callable[[str, str, Mapping[str, str], bytes], "str | None"]
"""Checks a request (method, path, headers, body); a returned message is answered 403 ``{"errorMsg": message}``."""


@dataclass
class SandboxState:
    """Shared by every handler of one app; the event loop is single-threaded, so no locks.

    ``rate_limits`` are the sandbox's configured limits (``--rate-limit``); a
    fault script that has ``rate_limits`` replaces them while it is in force,
    and :meth:`reset` brings them back.
    """

    ledger: Ledger
    log: RequestLog
    faults: FaultScript = field(default_factory=lambda: FaultScript([]))
    latency_ms: float = 0.0
    verifier: Verifier | None = None
    # for_seconds in fault scripts counts on this clock; monotonic, so a wall-clock jump cannot end a fault early
    fault_clock: Callable[[], float] = time.monotonic
    rate_limits: RateLimits = field(default_factory=dict)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    inbox: Inbox = field(default_factory=Inbox)

    def __post_init__(self) -> None:
        self.set_faults(self.faults)

    def set_faults(self, script: FaultScript) -> None:
        """Put ``script`` in force, with its rate limits if it has any, else the configured ones."""
        self.faults = script
        self.limiter.configure(script.rate_limits if script.rate_limits is not None else self.rate_limits)

    def reset(self) -> None:
        """Clear the ledger, the fault script, the calls the limiter counted, the request log and the notifications received (settings stay)."""
        self.ledger.clear()
        self.set_faults(FaultScript([], clock=self.fault_clock))
        self.limiter.clear()
        self.log.clear()
        self.inbox.clear()
