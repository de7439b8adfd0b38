"""A snapshot of payq's state in Redis: what ``payq stats`` prints and ``payq metrics`` exports."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from payapi.operations import API_OPERATIONS, QUEUES
from tasks import keys
from tasks.deadletters import DeadLetterStore
from tasks.jobstore import JobStore
from tasks.outbox import depth_calls, depth_of
from tasks.pace import learned_pace, pace_at
from tasks.pacer import Pacer


@dataclass
class Pace:
    """An endpoint's pace in calls per second: configured, learned from its 429s, and the one in force (None: none)."""

    configured: float | None
    learned: float | None
    pace: float | None


@dataclass
class Stats:
    """Queue depths, deferred jobs, refunds waiting for their capture, dead letters, endpoint pauses and paces, and API calls at ``taken_at``.

    ``outbox`` is how many outcome notifications are not yet delivered (nor
    dead-lettered), ``outbox_oldest`` when the oldest one's outcome was recorded.
    ``api_calls`` counts every call since the counters began, by operation and
    HTTP status (``none``: no response); a status of ``429`` is a throttled call.
    """

    taken_at: float
    queues: dict[str, int]
    unacked: int
    deferred: int
    deferred_next_due: float | None
    waiting: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    pauses: dict[str, float] = field(default_factory=dict)
    paces: dict[str, Pace] = field(default_factory=dict)
    api_calls: dict[str, dict[str, int]] = field(default_factory=dict)
    outbox: int = 0
    outbox_oldest: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def collect(client: redis.Redis, jobs: JobStore, dead_letters: DeadLetterStore, pacer: Pacer) -> Stats:
    """Read every figure in one pipelined round trip (plus a few for dead letters and paces)."""
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(queue)
    pipe.hlen(keys.UNACKED)
    pipe.zcard(keys.DEFERRED)
    pipe.zrange(keys.DEFERRED, 0, 0, withscores=True)
    pipe.hgetall(keys.API_CALLS)
    pipe.zcard(keys.WAITING)
    depth_calls(pipe)
    *depths, unacked, deferred, first, calls, waiting, outbox, oldest = pipe.execute()
    outbox_depth, outbox_oldest = depth_of(outbox, oldest)
    now = time.time()
    api_calls: dict[str, dict[str, int]] = {op.value: {} for op in API_OPERATIONS}
    for name, count in calls.items():
        operation, _, status = name.partition(":")
        api_calls.setdefault(operation, {})[status] = int(count)
    paces = {}
    for op in API_OPERATIONS:
        learned = pacer.learned(op)
        paces[op.value] = Pace(pacer.configured.get(op), learned_pace(learned, now), pace_at(learned, pacer.configured.get(op), now))
    return Stats(
        taken_at=now,
        queues=dict(zip(QUEUES, (int(d) for d in depths), strict=True)),
        unacked=int(unacked),
        deferred=int(deferred),
        deferred_next_due=float(first[0][1]) if first else None,
        waiting=int(waiting),
        dead_letters=dead_letters.count_by_reason(),
        pauses={op.value: until for op, until in jobs.pauses(API_OPERATIONS).items() if until > now},
        paces=paces,
        api_calls=api_calls,
        outbox=outbox_depth,
        outbox_oldest=outbox_oldest,
    )
