"""Each store's open jobs and its calls of the last minute: the intake's per-store cap and what ``payq stats`` shows per store.

Every job the enqueue script records joins its store's set (``payq:backlog:<storeId>``);
a job leaves it in the step that settles it (``succeed.lua``, ``finish_capture.lua``,
the dead-letter scripts; a replay puts it back). Entries a previous version left
behind, settled, are pruned as they are counted: :data:`PRUNE_WINDOW` of a
store's oldest entries are looked at per count, so a count is too high (never
too low) until they are gone. Jobs enqueued before the sets existed are not in them. BEGIN counts each call it lets go per store and operation in
ten-second windows (``payq:store-calls:<window>``).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import cast

import redis

from tasks.redis import keys, scripts

PRUNE_WINDOW = 500           # a store's oldest entries looked at per count
CALLS_WINDOW = 10            # seconds per window of calls counted by BEGIN
CALLS_WINDOWS_KEPT = 13      # 130 s: the last minute always whole
LAST_MINUTE = 60.0
MIN_RETRY_AFTER = 1          # seconds: what a store over its cap is told to wait, at least
MAX_RETRY_AFTER = 60


def count_args(stores: list[str]) -> list[str | int]:
    """ARGV of ``lua/backlog_count.lua`` for ``stores``."""
    return [PRUNE_WINDOW, keys.JOB_PREFIX, *[keys.backlog(store) for store in stores]]


def over_cap(open_jobs: int, new_jobs: int, cap: int | None) -> bool:
    """Whether a store with ``open_jobs`` may not enqueue ``new_jobs`` more under ``cap`` (None: no cap); jobs already on record count as new too."""
    return cap is not None and new_jobs > 0 and open_jobs + new_jobs > cap


def retry_after(open_jobs: int, cap: int, pace: float | None) -> int:
    """Seconds a store over its cap is told to wait: until about a tenth of its cap has drained at ``pace`` (None: a guess of 10/s)."""
    drain = max(1, open_jobs - cap + math.ceil(cap / 10))
    return max(MIN_RETRY_AFTER, min(MAX_RETRY_AFTER, math.ceil(drain / (pace or 10.0))))


@dataclass(frozen=True)
class StoreLoad:
    """One store: its open jobs, and its calls in the last minute per operation with its share of each operation's calls."""

    store: str
    open_jobs: int
    calls: dict[str, int]
    shares: dict[str, float]


def call_windows(now: float) -> list[int]:
    """The ten-second windows that make up the last minute before ``now`` (the current one partly)."""
    last = int(now // CALLS_WINDOW)
    return list(range(last - int(LAST_MINUTE // CALLS_WINDOW) + 1, last + 1))


class Backlog:
    """Read each store's open jobs (pruning settled ones) and its calls of the last minute."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._count = scripts.register(client, "backlog_count")

    def open_jobs(self, stores: list[str]) -> dict[str, int]:
        """How many jobs each of ``stores`` has open now."""
        if not stores:
            return {}
        counts = cast(list[int], self._count(keys=[], args=count_args(stores)))
        return {store: int(n) for store, n in zip(stores, counts, strict=True)}

    def stores(self, now: float, retention: float) -> list[str]:
        """The stores that enqueued within ``retention`` seconds (their jobs may still be open)."""
        found = cast(list[str], self._redis.zrangebyscore(keys.BACKLOG_STORES, now - retention, "+inf"))
        return [s.decode() if isinstance(s, bytes) else s for s in found]

    def calls(self, now: float) -> Counter[tuple[str, str]]:
        """Calls begun in the last minute per (operation, store)."""
        pipe = self._redis.pipeline(transaction=False)
        for window in call_windows(now):
            pipe.hgetall(keys.store_calls(window))
        total: Counter[tuple[str, str]] = Counter()
        for counts in pipe.execute():
            for field, n in counts.items():
                text = field.decode() if isinstance(field, bytes) else field
                operation, _, store = text.partition(":")
                total[(operation, store)] += int(n)
        return total

    def loads(self, now: float | None = None, retention: float = 86400.0) -> list[StoreLoad]:
        """Every store with open jobs or calls in the last minute, busiest first."""
        now = time.time() if now is None else now
        calls = self.calls(now)
        stores = sorted(set(self.stores(now, retention)) | {store for _, store in calls})
        open_jobs = self.open_jobs(stores)
        per_op: Counter[str] = Counter()
        for (operation, _), n in calls.items():
            per_op[operation] += n
        loads = []
        for store in stores:
            mine = {op: n for (op, s), n in calls.items() if s == store}
            if not mine and not open_jobs.get(store):
                continue
            shares = {op: n / per_op[op] for op, n in mine.items() if per_op[op]}
            loads.append(StoreLoad(store, open_jobs.get(store, 0), dict(sorted(mine.items())), dict(sorted(shares.items()))))
        return sorted(loads, key=lambda load: (-load.open_jobs, -sum(load.calls.values()), load.store))
