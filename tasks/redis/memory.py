"""Redis's memory as payq plans it: what a trip costs, what the current rate will come to, and how near ``maxmemory`` it is.

Redis holds everything in RAM, and with ``noeviction`` (what payq needs: an
evicted job record is a lost idempotency key) a full Redis refuses every
write. The model (docs/scaling.md): RAM = trips a day × (job retention ×
a trip's job records + books retention × its books). :func:`read_memory`
reads the figures in two round trips whatever Redis holds: ``INFO memory``,
the key count, a sample of random keys with their ``MEMORY USAGE``, and the
rate at which captures succeed now (the pace's own tenth-of-a-second counts,
kept :data:`~tasks.redis.keys.SUCCESSES_KEPT` seconds). The rest is pure.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from tasks.redis import keys

NEAR_FULL = 0.8  # of maxmemory: /readyz, the console and `payq stats` warn from here (writes fail at 1.0 with noeviction)
SAMPLE = 100     # random keys whose MEMORY USAGE a reading takes: two round trips of ~100 small commands
DAY = 86400
# What a settled trip keeps: its capture's and its report's records (the job retention), and its books (the books retention)
RECORD_KINDS = ("job:capture", "job:feedback")
BOOKS_KIND = "trip"


@dataclass(frozen=True)
class Memory:
    """One reading: Redis's memory and limit, payq's keys by kind (estimated from a sample), what a trip costs, and the projection.

    ``per_trip`` is a settled trip's records and books by ``MEMORY USAGE``
    (sampled; None until the sample holds each kind); ``trips_per_second`` how
    fast captures succeed now; ``projected`` the steady state those come to
    with the retentions (None without a per-trip figure).
    """

    used: int
    maxmemory: int  # 0: no limit
    policy: str
    keys: int
    by_kind: dict[str, int] = field(default_factory=dict)
    sampled: dict[str, float] = field(default_factory=dict)  # kind -> mean MEMORY USAGE in the sample
    per_trip: float | None = None
    trips_per_second: float = 0.0
    projected: float | None = None

    @property
    def fill(self) -> float | None:
        """``used`` as a share of ``maxmemory``; None without a limit."""
        return self.used / self.maxmemory if self.maxmemory else None

    @property
    def warning(self) -> str | None:
        """What /readyz, the console and ``payq stats`` say when Redis is near full (None: it is not)."""
        return near_full_warning(self.used, self.maxmemory, self.policy)


def kind_of(key: str) -> str:
    """What a Redis key holds, by payq's names (tasks/redis/keys.py): ``job:capture``, ``job:history``, ``trip``, ``dlq``, ...; ``other`` for Celery's."""
    parts = key.split(":")
    if parts[0] != keys.PREFIX or len(parts) < 2:
        return "other"
    if parts[1] == "job" and len(parts) > 2:
        return "job:history" if parts[-1] in ("deferrals", "replays") else f"job:{parts[2]}"
    if parts[1] == "trip":
        return "trip:held" if parts[-1] == "held" else BOOKS_KIND
    return parts[1]


def estimate_kinds(sample: list[str], total: int) -> dict[str, int]:
    """Keys by kind: each kind's share of the sample times the ``total`` key count."""
    if not sample:
        return {}
    counted = Counter(kind_of(key) for key in sample)
    return {kind: round(total * n / len(sample)) for kind, n in sorted(counted.items())}


def mean_sizes(sample: list[tuple[str, int]]) -> dict[str, float]:
    """The mean ``MEMORY USAGE`` of each kind of key in ``sample`` (key, bytes)."""
    sizes: dict[str, list[int]] = defaultdict(list)
    for key, size in sample:
        sizes[kind_of(key)].append(size)
    return {kind: sum(found) / len(found) for kind, found in sorted(sizes.items())}


def trip_cost(sampled: dict[str, float]) -> tuple[float, float] | None:
    """A settled trip's job records and its books, in bytes, from the sampled sizes; None until the sample has every kind."""
    if any(kind not in sampled for kind in (*RECORD_KINDS, BOOKS_KIND)):
        return None
    return sum(sampled[kind] for kind in RECORD_KINDS), sampled[BOOKS_KIND]


def projected(trips_per_second: float, records: float, books: float, job_days: float, books_days: float) -> float:
    """Bytes Redis settles at with trips coming at ``trips_per_second``: each trip's records kept ``job_days``, its books ``books_days``."""
    per_day = trips_per_second * DAY
    return per_day * (job_days * records + books_days * books)


def near_full_warning(used: int, maxmemory: int, policy: str, threshold: float = NEAR_FULL) -> str | None:
    """A warning when ``used`` is at least ``threshold`` of ``maxmemory``; None below it, or without a limit."""
    if not maxmemory or used < threshold * maxmemory:
        return None
    return (f"Redis is {used / maxmemory:.0%} full ({_mib(used)} of maxmemory {_mib(maxmemory)}, policy {policy}): when full, every"
            " enqueue fails; raise maxmemory or lower PAYQ_JOB_RETENTION_DAYS (docs/scaling.md)")


def warning_from(info: dict[str, Any]) -> str | None:
    """:func:`near_full_warning` from Redis's ``INFO memory`` (sync or async client alike)."""
    return near_full_warning(int(info.get("used_memory", 0)), int(info.get("maxmemory", 0)), str(info.get("maxmemory_policy", "")))


def read_memory(client: redis.Redis, job_days: float, books_days: float, sample: int = SAMPLE, now: float | None = None) -> Memory:
    """One :class:`Memory` reading of ``client``'s Redis, with the retentions in days."""
    tenth = int((time.time() if now is None else now) * 10)
    successes = [keys.successes("capture", t) for t in range(tenth - keys.SUCCESSES_KEPT * 10 + 1, tenth + 1)]
    pipe = client.pipeline(transaction=False)
    pipe.info("memory")
    pipe.dbsize()
    pipe.mget(successes)
    for _ in range(sample):
        pipe.randomkey()
    info, total, counts, *found = pipe.execute()
    names = sorted({_text(key) for key in found if key is not None})
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name)  # its default of 5 samples: a long queue or the dead letters are estimated, not walked
    sizes = [(name, int(size)) for name, size in zip(names, pipe.execute(), strict=True) if size is not None]
    sampled = mean_sizes(sizes)
    rate = sum(int(count) for count in counts if count is not None) / keys.SUCCESSES_KEPT
    cost = trip_cost(sampled)
    return Memory(
        used=int(info["used_memory"]), maxmemory=int(info.get("maxmemory", 0)), policy=str(info.get("maxmemory_policy", "")),
        keys=int(total), by_kind=estimate_kinds([_text(key) for key in found if key is not None], int(total)), sampled=sampled,
        per_trip=sum(cost) if cost else None, trips_per_second=rate,
        projected=projected(rate, cost[0], cost[1], job_days, books_days) if cost else None,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"
