"""A snapshot of payq's state in Redis: what ``payq stats`` prints and ``payq metrics`` exports."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from payapi.operations import QUEUES, Operation
from tasks import keys
from tasks.deadletters import DeadLetterStore
from tasks.jobstore import JobStore


@dataclass
class Stats:
    """Queue depths, deferred jobs, dead letters and endpoint pauses at ``taken_at``."""

    taken_at: float
    queues: dict[str, int]
    unacked: int
    deferred: int
    deferred_next_due: float | None
    dead_letters: dict[str, int] = field(default_factory=dict)
    pauses: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def collect(client: redis.Redis, jobs: JobStore, dead_letters: DeadLetterStore) -> Stats:
    """Read every figure in one pipelined round trip (plus one for dead letters)."""
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(queue)
    pipe.hlen(keys.UNACKED)
    pipe.zcard(keys.DEFERRED)
    pipe.zrange(keys.DEFERRED, 0, 0, withscores=True)
    *depths, unacked, deferred, first = pipe.execute()
    now = time.time()
    return Stats(
        taken_at=now,
        queues=dict(zip(QUEUES, (int(d) for d in depths), strict=True)),
        unacked=int(unacked),
        deferred=int(deferred),
        deferred_next_due=float(first[0][1]) if first else None,
        dead_letters=dead_letters.count_by_reason(),
        pauses={op.value: until for op, until in jobs.pauses(Operation).items() if until > now},
    )
