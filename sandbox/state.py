"""What one running sandbox holds: the ledger, the fault script in force, the request log and its settings."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sandbox.faults import FaultScript
from sandbox.ledger import Ledger
from sandbox.requestlog import RequestLog

Verifier = Callable[[str, str, Mapping[str, str], bytes], "str | None"]
"""Checks a request (method, path, headers, body); a returned message is answered 403 ``{"errorMsg": message}``."""


@dataclass
class SandboxState:
    """Shared by every handler of one app; the event loop is single-threaded, so no locks."""

    ledger: Ledger
    log: RequestLog
    faults: FaultScript = field(default_factory=lambda: FaultScript([]))
    latency_ms: float = 0.0
    verifier: Verifier | None = None
    # for_seconds in fault scripts counts on this clock; monotonic, so a wall-clock jump cannot end a fault early
    fault_clock: Callable[[], float] = time.monotonic

    def reset(self) -> None:
        """Clear the ledger, the fault script and the request log (settings stay)."""
        self.ledger.clear()
        self.faults = FaultScript([], clock=self.fault_clock)
        self.log.clear()
