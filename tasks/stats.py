"""A snapshot of payq's state in Redis: what ``payq stats`` prints and ``payq metrics`` exports."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from payapi.operations import API_OPERATIONS, QUEUES
from tasks.notify.outbox import depth_calls, depth_of
from tasks.pacing.pacer import Pacer
from tasks.pacing.rules import learned_pace, pace_at
from tasks.redis import keys
from tasks.redis.connection import primary_address
from tasks.redis.replicas import Replicas, ReplicaState, in_sync, replicas_in, state_of
from tasks.store.deadletters import DeadLetterStore
from tasks.store.leases import LeaseStore
from tasks.store.records import JobStore


@dataclass
class Pace:
    """An endpoint's pace in calls per second: configured, learned from its 429s, and the one in force (None: none)."""

    configured: float | None
    learned: float | None
    pace: float | None


@dataclass
class Replication:
    """Which Redis answers as primary; its replicas connected and in sync (online, acknowledged within the last second); the floor, and the state."""

    primary: str
    replicas: int
    in_sync: int
    floor: int = 0
    state: ReplicaState = ReplicaState.SAFE


def replication(info: dict[str, Any], primary: str, floor: int = 0, failover: bool = False) -> Replication:
    """:class:`Replication` from the primary's ``INFO replication``, as payq's writes see it (:mod:`tasks.redis.replicas`)."""
    found = replicas_in(info)
    synced = len(in_sync(found, {}))
    return Replication(primary, len(found), synced, floor, state_of(synced, floor, failover or bool(found)))


@dataclass
class WorkerSeen:
    """A worker process by its heartbeat: its id (host.pid.random), its last beat (epoch seconds, Redis's clock), and its age then."""

    worker: str
    last_beat: float
    age: float


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
    live_workers: list[WorkerSeen] = field(default_factory=list)  # heartbeat within a lease, latest first
    recovered: int = 0  # jobs given back after their holder's lease lapsed, since the counter began
    redis: Replication | None = None
    outbox: int = 0
    outbox_oldest: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def collect(client: redis.Redis, jobs: JobStore, dead_letters: DeadLetterStore, pacer: Pacer, leases: LeaseStore | None = None,
            replicas: Replicas | None = None) -> Stats:
    """Read every figure in one pipelined round trip (plus a few for dead letters and paces; and for ``leases``, the live workers).

    ``replicas`` gives the floor and whether a failover is configured, which
    say what the replicas in sync mean (:class:`~tasks.redis.replicas.ReplicaState`).
    """
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(queue)
    pipe.zcard(keys.LEASES)  # a running job's message is acknowledged after its outcome: in flight = held
    pipe.zcard(keys.DEFERRED)
    pipe.zrange(keys.DEFERRED, 0, 0, withscores=True)
    pipe.hgetall(keys.API_CALLS)
    pipe.zcard(keys.WAITING)
    pipe.get(keys.RECOVERED)
    pipe.info("replication")
    depth_calls(pipe)
    *depths, unacked, deferred, first, calls, waiting, recovered, replication_info, outbox, oldest = pipe.execute()
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
        pauses={op.value: until for op, until in pacer.pauses(API_OPERATIONS).items() if until > now},
        paces=paces,
        api_calls=api_calls,
        live_workers=_live(leases) if leases is not None else [],
        recovered=int(recovered or 0),
        redis=replication(replication_info, primary_address(client), replicas.floor if replicas else 0, bool(replicas and replicas.failover)),
        outbox=outbox_depth,
        outbox_oldest=outbox_oldest,
    )


def _live(leases: LeaseStore) -> list[WorkerSeen]:
    """The workers whose last heartbeat is within a lease, by Redis's clock."""
    now = leases.now()
    seen = [WorkerSeen(w.worker, w.last_beat, now - w.last_beat) for w in leases.workers()]
    return [w for w in seen if w.age <= leases.lease]
