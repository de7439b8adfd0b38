"""The private services one benchmark run shares: a Redis and a sandbox per latency."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import cast

import redis

from benchmarks.calls import CallLog
from benchmarks.processes import RedisProc, SandboxProc


class Stack:
    """A private ``redis-server`` and sandboxes (``--auto-register``), started on demand, stopped by :meth:`close`."""

    def __init__(self, redis_proc: RedisProc | None = None) -> None:
        self.redis = redis_proc or RedisProc()
        self.client: redis.Redis = self.redis.client()
        self._sandboxes: dict[float, SandboxProc] = {}
        self._logs: dict[float, CallLog] = {}

    @property
    def redis_url(self) -> str:
        """The private Redis."""
        return self.redis.url

    def sandbox(self, latency_ms: float) -> SandboxProc:
        """The sandbox answering after ``latency_ms``, started on first use."""
        if latency_ms not in self._sandboxes:
            self._sandboxes[latency_ms] = SandboxProc(latency_ms)
            self._logs[latency_ms] = CallLog(self._sandboxes[latency_ms].url)
        return self._sandboxes[latency_ms]

    def fresh(self, latency_ms: float) -> tuple[SandboxProc, CallLog]:
        """An empty Redis and an empty sandbox at ``latency_ms``, with its call log."""
        sandbox = self.sandbox(latency_ms)
        log = self._logs[latency_ms]
        self.client.flushall()
        log.reset()
        for other in self._sandboxes.values():
            if other is not sandbox:
                # a sandbox not in use gives its memory back: its log of the last run is not needed
                self._logs[other.latency_ms].reset()
        return sandbox, log

    def deferred_entries(self, key: str) -> dict[str, float]:
        """Every member of the sorted set ``key`` with its score."""
        pairs = cast(list[tuple[str, float]], self.client.zrange(key, 0, -1, withscores=True))
        return dict(pairs)

    def oldest_score(self, key: str) -> float | None:
        """The lowest score in the sorted set ``key``; None when it is empty."""
        pairs = cast(list[tuple[str, float]], self.client.zrange(key, 0, 0, withscores=True))
        return pairs[0][1] if pairs else None

    def wait_for_key(self, key: str, timeout: float = 30.0) -> None:
        """Wait until ``key`` exists (e.g. an endpoint's pause after a 429)."""
        deadline = time.monotonic() + timeout
        while not self.client.exists(key):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{key} did not appear within {timeout:g} s")
            time.sleep(0.005)

    def hget_many(self, names: Iterable[str], field: str) -> list[str | None]:
        """``HGET name field`` for each name, in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(name, field)
        return cast(list[str | None], pipe.execute())

    def used_memory(self) -> int:
        """Redis ``INFO memory`` ``used_memory``, bytes."""
        info = cast(dict[str, int], self.client.info("memory"))
        return int(info["used_memory"])

    def redis_cpu_seconds(self) -> float:
        """Redis's user plus system CPU so far, seconds, from ``INFO cpu`` (getrusage, to the microsecond).

        Not /proc's clock ticks: at 10 ms a tick, a quick drain's 0.2 s of
        Redis CPU read to ±5%, which alone spread three rounds' ratio by ±10%.
        """
        info = self.client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def close(self) -> None:
        """Stop everything this stack started."""
        for log in self._logs.values():
            log.close()
        for sandbox in self._sandboxes.values():
            sandbox.stop()
        self.client.close()
        self.redis.stop()
