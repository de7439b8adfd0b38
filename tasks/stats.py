"""A snapshot of payq's state in Redis: what ``payq stats`` prints and ``payq metrics`` exports."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

from payapi.operations import API_OPERATIONS, QUEUES
from tasks.notify.outbox import depth_calls, depth_of
from tasks.pacing.pacer import Pacer
from tasks.pacing.rules import learned_pace, pace_at
from tasks.redis import keys
from tasks.redis.connection import primary_address
from tasks.redis.memory import Memory, read_memory
from tasks.redis.replicas import Replicas, ReplicaState, in_sync, replicas_in, state_of
from tasks.states import JobState
from tasks.store import lanes
from tasks.store.backlog import Backlog, StoreLoad
from tasks.store.deadletters import DeadLetterStore
from tasks.store.leases import LeaseStore, steady
from tasks.store.records import JobStore

STORES_SHOWN = 20       # the busiest stores listed (each costs a bounded count of its open jobs)
STORES_SINCE = 3600.0   # seconds: stores that enqueued within this may still have jobs open


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
    """A worker process by its heartbeat: its id (host.pid.random), its last beat (epoch seconds, Redis's clock), its age then.

    ``steady``: it has beaten without a break for a lease, so it may give back
    another's lapsed jobs (:func:`tasks.store.leases.steady`).
    """

    worker: str
    last_beat: float
    age: float
    steady: bool = False


@dataclass
class Stats:
    """Queue depths, deferred jobs, refunds waiting for their capture, dead letters, endpoint pauses and paces, and API calls at ``taken_at``.

    ``outbox`` is how many outcome notifications are not yet delivered (nor
    dead-lettered), ``outbox_oldest`` when the oldest one's outcome was recorded.
    ``api_calls`` counts every call since the counters began, by operation and
    HTTP status (``none``: no response); a status of ``429`` is a throttled call.
    ``queued_since`` is, per queue, when the longest-waiting of the jobs next in
    line (its own list's and each store lane's) became queued (absent: the queue
    is empty, or none of those messages is a queued payq job);
    ``intake_answers`` the HTTP intake's answers by status and ``worker_starts``
    the worker processes started, both since their counters began. ``stores``
    are the busiest :data:`STORES_SHOWN` stores that enqueued in the last
    :data:`STORES_SINCE` seconds or made calls in the last minute: each one's open
    jobs, its calls in the last minute and its share of each endpoint's
    (:mod:`tasks.store.backlog`).
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
    queued_since: dict[str, float] = field(default_factory=dict)
    intake_answers: dict[str, int] = field(default_factory=dict)
    worker_starts: int = 0
    stores: list[StoreLoad] = field(default_factory=list)  # per store: open jobs, calls and share of the last minute
    memory: Memory | None = None  # Redis's memory, payq's keys by kind, a trip's cost and the projection (tasks/redis/memory.py)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def collect(client: redis.Redis, jobs: JobStore, dead_letters: DeadLetterStore, pacer: Pacer, leases: LeaseStore | None = None,
            replicas: Replicas | None = None, retention: tuple[float, float] | None = None) -> Stats:
    """Read every figure in a few pipelined round trips, each bounded whatever the number of jobs (the lanes by the stores waiting).

    Two for each queue's depth and next messages (its own list's and each
    store's lane's: :mod:`tasks.store.lanes`), one for the counters, one for those
    messages' records (and, with ``leases``, the live workers), then a few for
    dead letters and paces; and with ``leases``, one for the live workers' runs.
    ``replicas`` gives the floor and whether a failover is configured, which
    say what the replicas in sync mean (:class:`~tasks.redis.replicas.ReplicaState`).
    ``retention`` (days a job record is kept, days a trip's books are) adds
    Redis's memory and its projection, two round trips more (:func:`~tasks.redis.memory.read_memory`).
    """
    queued = lanes.waiting(client, QUEUES)  # each queue's depth and the next in line of its own list and each lane
    pipe = client.pipeline(transaction=False)
    pipe.zcard(keys.LEASES)  # a running job's message is acknowledged after its outcome: in flight = held
    pipe.zcard(keys.DEFERRED)
    pipe.zrange(keys.DEFERRED, 0, 0, withscores=True)
    pipe.hgetall(keys.API_CALLS)
    pipe.zcard(keys.WAITING)
    pipe.get(keys.RECOVERED)
    pipe.info("replication")
    pipe.hgetall(keys.INTAKE_ANSWERS)
    pipe.get(keys.WORKER_STARTS)
    pipe.time()
    depth_calls(pipe)
    replies = pipe.execute()
    (unacked, deferred, first, calls, waiting, recovered, replication_info, answers, starts, redis_time,
     outbox, oldest) = replies
    outbox_depth, outbox_oldest = depth_of(outbox, oldest)
    redis_now = redis_time[0] + redis_time[1] / 1_000_000
    head_ids = [(queue, job_id) for queue, w in queued.items() for head in w.next_in_line if (job_id := _job_id(head)) is not None]
    pipe = client.pipeline(transaction=False)
    for _queue, job_id in head_ids:
        pipe.hmget(keys.job(job_id), "state", "updated_at")
    if leases is not None:
        pipe.zrevrangebyscore(keys.WORKERS, "+inf", redis_now - leases.lease, withscores=True)
    records = pipe.execute()
    queued_since: dict[str, float] = {}  # per queue, the oldest of its lists' next messages
    for (queue, _job), (state, updated_at) in zip(head_ids, records, strict=False):
        if state == JobState.QUEUED and updated_at is not None:
            queued_since[queue] = min(float(updated_at), queued_since.get(queue, float(updated_at)))
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
        queues={queue: w.depth for queue, w in queued.items()},
        unacked=int(unacked),
        deferred=int(deferred),
        deferred_next_due=float(first[0][1]) if first else None,
        waiting=int(waiting),
        dead_letters=dead_letters.count_by_reason(),
        pauses={op.value: until for op, until in pacer.pauses(API_OPERATIONS).items() if until > now},
        paces=paces,
        api_calls=api_calls,
        live_workers=_live(client, records[-1], redis_now, leases.lease) if leases is not None else [],
        recovered=int(recovered or 0),
        redis=replication(replication_info, primary_address(client), replicas.floor if replicas else 0, bool(replicas and replicas.failover)),
        outbox=outbox_depth,
        outbox_oldest=outbox_oldest,
        queued_since=queued_since,
        intake_answers={status: int(n) for status, n in sorted(answers.items())},
        worker_starts=int(starts or 0),
        stores=Backlog(client).loads(now, STORES_SINCE)[:STORES_SHOWN],
        memory=read_memory(client, *retention) if retention is not None else None,
    )


def _job_id(message: bytes | str | None) -> str | None:
    """The job id (Celery's task id) of a queue's message; None for none, or for a message that is not a Celery task's."""
    if message is None:
        return None
    try:
        job_id = json.loads(message)["headers"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
    return job_id if isinstance(job_id, str) else None


def _live(client: redis.Redis, beats: list[tuple[str, float]], now: float, lease: float) -> list[WorkerSeen]:
    """The workers whose last heartbeat is within a lease of ``now`` (Redis's clock), latest first, each with whether it is steady."""
    if not beats:
        return []
    since = cast(list[str | None], client.hmget(keys.WORKERS_STEADY, [worker for worker, _ in beats]))
    return [
        WorkerSeen(worker, float(at), now - float(at), steady(float(at), float(run) if run is not None else None, now, lease))
        for (worker, at), run in zip(beats, since, strict=True)
    ]
