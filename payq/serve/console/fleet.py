"""The Workers panel: every worker process by its heartbeat, the jobs it holds under a lease, and the jobs given back.

Read from the keys the heartbeats and leases keep (``tasks/store/leases.py``):
``payq:workers`` (each process's last beat), ``payq:workers:steady`` (since
when it has beaten without a break), ``payq:leases`` (each held job and when
its lease ends) with the job records' ``holder``, and ``payq:recovered``.
Times are Redis's clock, as the leases are, so a host's clock never makes a
live worker look dead.

A worker is *live* while its last beat is within a lease (as ``payq stats``
counts them), and *steady* once it has beaten without a break for a lease
(only a steady worker gives back others' lapsed jobs). One whose beats
stopped is shown apart for :data:`RECENTLY_DEAD` seconds, with the jobs still
on record as its own: a live, steady worker gives those back within a second
of their lease's end.

Bounded: at most :data:`MAX_WORKERS` workers (latest beat first) and
:data:`MAX_HELD` leases (soonest to end first) in three round trips, however
many processes come and go; the panel says when there are more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis

from payq.serve.console.live import kwargs_of
from payq.views import subject_of
from tasks.redis import keys
from tasks.store.leases import steady

MAX_WORKERS = 100      # worker processes listed, latest heartbeat first
MAX_HELD = 500         # leases read, the soonest to end first
RECENTLY_DEAD = 3600.0  # seconds a worker whose heartbeat stopped stays on the panel
HELD_FIELDS = ("holder", "op", "kwargs")


@dataclass(frozen=True)
class Beating:
    """A worker process's heartbeat as read: its id, its last beat, and since when its run of beats is unbroken (None: unknown)."""

    worker: str
    last_beat: float
    since: float | None


@dataclass(frozen=True)
class Lease:
    """A held job as read: its id, when its lease ends, its holder (None: the record is gone), operation and kwargs."""

    job_id: str
    lease_until: float
    holder: str | None
    operation: str
    store: str
    trip: str


@dataclass(frozen=True)
class WorkerRow:
    """One worker on the panel: how long ago it last beat, whether it is steady, and the jobs it holds (soonest lease end first)."""

    worker: str
    last_beat: float
    age: float
    steady: bool
    jobs: list[Lease]


@dataclass(frozen=True)
class Fleet:
    """What the panel shows, as of ``now`` (Redis's clock).

    ``live`` and ``stopped`` (heartbeat older than a lease, within
    :data:`RECENTLY_DEAD`), latest beat first; ``unlisted``: held jobs whose
    holder is on neither list (forgotten, or beyond the first
    :data:`MAX_WORKERS`). The totals are the keys' sizes, for "N of M".
    """

    now: float
    lease: float
    live: list[WorkerRow]
    stopped: list[WorkerRow]
    unlisted: list[Lease]
    workers_total: int
    held_total: int
    recovered: int

    @property
    def held(self) -> int:
        """Held jobs read (at most :data:`MAX_HELD`)."""
        return sum(len(w.jobs) for w in self.live + self.stopped) + len(self.unlisted)


def shape(beats: Sequence[Beating], leases: Sequence[Lease], now: float, lease: float) -> tuple[list[WorkerRow], list[WorkerRow], list[Lease]]:
    """Split the workers into live and stopped (latest beat first), each with its held jobs; and the held jobs of no listed worker."""
    by_holder: dict[str, list[Lease]] = {}
    for held in sorted(leases, key=lambda held: (held.lease_until, held.job_id)):
        by_holder.setdefault(held.holder or "", []).append(held)
    live: list[WorkerRow] = []
    stopped: list[WorkerRow] = []
    for beat in sorted(beats, key=lambda beat: (-beat.last_beat, beat.worker)):
        age = max(0.0, now - beat.last_beat)
        row = WorkerRow(beat.worker, beat.last_beat, age, steady(beat.last_beat, beat.since, now, lease), by_holder.pop(beat.worker, []))
        (live if age <= lease else stopped).append(row)
    unlisted = sorted((held for jobs in by_holder.values() for held in jobs), key=lambda held: (held.lease_until, held.job_id))
    return live, stopped, unlisted


def read(client: redis.Redis, lease: float) -> Fleet:
    """The panel's figures in three round trips: Redis's clock; the recent workers, the leases and the counters; steadiness and holders."""
    seconds, micros = client.time()
    now = seconds + micros / 1_000_000
    pipe = client.pipeline(transaction=False)
    pipe.zrevrangebyscore(keys.WORKERS, "+inf", now - RECENTLY_DEAD, start=0, num=MAX_WORKERS, withscores=True)
    pipe.zcount(keys.WORKERS, now - RECENTLY_DEAD, "+inf")
    pipe.zrange(keys.LEASES, 0, MAX_HELD - 1, withscores=True)
    pipe.zcard(keys.LEASES)
    pipe.get(keys.RECOVERED)
    found, workers_total, held, held_total, recovered = pipe.execute()
    found = cast(list[tuple[str, float]], found)
    held = cast(list[tuple[str, float]], held)
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.WORKERS_STEADY, [worker for worker, _ in found] or ["-"])
    for job_id, _ in held:
        pipe.hmget(keys.job(job_id), HELD_FIELDS)
    sinces, *records = pipe.execute()
    beats = [Beating(worker, float(at), float(since) if since else None) for (worker, at), since in zip(found, sinces, strict=False)]
    leases = [_lease(job_id, float(until), dict(zip(HELD_FIELDS, values, strict=True))) for (job_id, until), values in zip(held, records, strict=True)]
    live, stopped, unlisted = shape(beats, leases, now, lease)
    return Fleet(now, lease, live, stopped, unlisted, int(workers_total), int(held_total), int(recovered or 0))


def _lease(job_id: str, lease_until: float, record: dict[str, str | None]) -> Lease:
    subject = subject_of(kwargs_of(record))
    return Lease(job_id, lease_until, record.get("holder"), record.get("op") or "-", subject.store, subject.trip)
