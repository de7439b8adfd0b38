"""A running payq: fresh Redis and sandbox, warmed-up workers, a producer, the call log."""

from __future__ import annotations

import time
import uuid
from typing import Any

from benchmarks.processes import SandboxProc
from benchmarks.stack import Stack
from benchmarks.workers import Fleet, Shape, start_payq
from config.settings import Settings
from tasks.producer import Producer


class LivePayq:
    """payq workers of ``shape`` against a fresh sandbox at ``latency_ms``; use as a context manager."""

    def __init__(self, stack: Stack, latency_ms: float, shape: Shape, *, env: dict[str, str] | None = None,
                 tweaks: tuple[str, ...] = ()) -> None:
        self.stack = stack
        self.sandbox: SandboxProc
        self.sandbox, self.log = stack.fresh(latency_ms)
        self.settings = Settings(redis_url=stack.redis_url, api_base_url=self.sandbox.url)
        self.producer = Producer(self.settings)
        self.fleet: Fleet = start_payq(shape, stack.redis_url, self.sandbox.url, env=env, tweaks=tweaks)
        try:
            self.fleet.wait_ready()
            self._warm_up(4 * shape.processes)
        except BaseException:
            self.fleet.stop(timeout=2)
            raise

    def _warm_up(self, count: int) -> None:
        """Run a few cancels through every worker (imports, connections, scripts), then clear the sandbox."""
        tag = uuid.uuid4().hex[:6]
        for i in range(count):
            self.producer.enqueue("cancel", {"storeId": "bench-store", "shoppingTripId": f"warm-{tag}-{i}"})
        if not self.log.wait_for(count, timeout=60, stall=45, interval=0.1):
            raise RuntimeError(f"payq workers did not start:\n{self.fleet.output()}")
        time.sleep(0.3)
        self.log.reset()

    def __enter__(self) -> LivePayq:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        # a failed or interrupted run ends its workers at once; a finished one lets them shut down warm
        self.fleet.stop(timeout=2 if kind is not None else 20)
