"""One owner per job: worker heartbeats and job leases.

Every worker process has an id and a heartbeat (``payq:workers``, a sorted
set of last beats) written every fifth of a lease by a thread of its own,
which never waits behind an API call. A job that BEGIN claims records its
holder (the process's id) and a claim (unique to that delivery), and gets a
lease in ``payq:leases`` that the holder's heartbeat renews. Everything is
timed by Redis's clock, inside the scripts, so hosts' clocks may differ.

The rules are the pure functions below; the scripts in ``tasks/store/lua/``
(``begin``, ``beat``, ``renew``, ``recover`` and ``lib/lease.lua``) carry out
the same rules atomically, and a test holds the two to the same table:

- a copy of a running job, whatever its delivery tag, calls nothing while
  the holder's lease stands (:func:`copy_verdict`);
- a lease that lapsed is judged only by a *steady* worker, one that beats now
  and has beaten without a break for a lease (:func:`steady`): after Redis
  itself was away, nobody is steady until every live holder has renewed;
- a worker about to call asks Redis whether it still holds the job, unless
  it claimed or checked it less than half a lease ago (:func:`needs_check`);
- an outcome is written only under the claim that made the call.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import redis

from tasks.redis import keys, scripts
from tasks.states import Verdict

BEATS_PER_LEASE = 5  # a holder beats this many times per lease: a lost beat or two do not cost it its jobs
FORGET_WORKERS_AFTER = 86400.0  # seconds after its last beat a worker leaves ``payq:workers``


def beat_every(lease: float) -> float:
    """Seconds between a worker's heartbeats."""
    return lease / BEATS_PER_LEASE


def lease_end(now: float, lease: float) -> int:
    """When a lease taken or renewed at ``now`` ends: whole seconds, rounded up (``lib/lease.lua``'s ``lease_end``).

    Whole seconds keep ``payq:leases`` a set of integer scores, which Redis
    compares without parsing them while the set is small enough to be a
    listpack; a lease lasts up to a second longer than asked.
    """
    return math.ceil(now + lease)


def holder_alive(lease_until: float | None, now: float) -> bool:
    """Whether a running job's holder still holds it at ``now``: its lease (None: none on record) has not ended."""
    return lease_until is not None and lease_until > now


def run_broken(last_beat: float | None, now: float, lease: float) -> bool:
    """Whether a heartbeat at ``now`` starts a new unbroken run: the worker's first, or over half a lease after its last."""
    return last_beat is None or now - last_beat > lease / 2


def steady(last_beat: float | None, since: float | None, now: float, lease: float) -> bool:
    """Whether a worker may judge others' leases at ``now``: it beats now and has beaten without a break for a lease."""
    return last_beat is not None and since is not None and now - last_beat <= lease / 2 and now - since >= lease


def copy_verdict(lease_until: float | None, last_beat: float | None, since: float | None, now: float, lease: float) -> Verdict:
    """What BEGIN does with a delivery of a job that is running, for a claimant whose heartbeat is (``last_beat``, ``since``).

    ``HELD`` (nothing to do; the holder finishes the job) while the holder's
    lease stands; after it lapsed, ``RUN`` (take it over) only for a steady
    claimant, else ``HELD`` too: the lease sweep gives the job back.
    """
    if holder_alive(lease_until, now):
        return Verdict.HELD
    return Verdict.RUN if steady(last_beat, since, now, lease) else Verdict.HELD


def may_recover(lease_until: float | None, last_beat: float | None, since: float | None, now: float, lease: float) -> bool:
    """Whether a sweeper whose heartbeat is (``last_beat``, ``since``) gives back a running job with ``lease_until``."""
    return lease_until is not None and not holder_alive(lease_until, now) and steady(last_beat, since, now, lease)


def needs_check(held_for: float, lease: float) -> bool:
    """Whether a worker must ask Redis before calling: it claimed the job (or last checked) ``held_for`` seconds ago, half a lease or more.

    Sooner, its lease has half a lease left at least, and no sweep can have taken it.
    """
    return held_for >= lease / 2


def new_worker_id() -> str:
    """An id for this worker process: host, pid and a random part (a pid is reused; a restart must not inherit leases)."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def new_claim() -> str:
    """A claim for one delivery: outcomes are written only under the claim that made the call."""
    return uuid.uuid4().hex


class Holdings:
    """The jobs this process runs, with their claims: what its heartbeat renews the leases of."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}

    def hold(self, job_id: str, claim: str) -> None:
        """Renew the job's lease from now on."""
        with self._lock:
            self._held[job_id] = claim

    def release(self, job_id: str, claim: str) -> None:
        """Stop renewing the job's lease (its outcome is written, or the delivery gave up)."""
        with self._lock:
            if self._held.get(job_id) == claim:
                del self._held[job_id]

    def items(self) -> list[tuple[str, str]]:
        """(job id, claim) of every job held now."""
        with self._lock:
            return list(self._held.items())


@dataclass(frozen=True)
class Beat:
    """What a heartbeat found, by Redis's clock: the time, since when the run is unbroken, and the leases renewed."""

    now: float
    since: float
    renewed: int


@dataclass(frozen=True)
class WorkerBeat:
    """A worker process as ``payq:workers`` knows it: its id and its last heartbeat."""

    worker: str
    last_beat: float


class LeaseStore:
    """Heartbeats and leases in Redis: beat, renew before a call, list the workers, read a job's lease."""

    def __init__(self, client: redis.Redis, lease: float) -> None:
        self._redis = client
        self.lease = lease
        self._beat = scripts.register(client, "beat")
        self._renew = scripts.register(client, "renew")

    def beat(self, worker: str, held: Iterable[tuple[str, str]]) -> Beat:
        """Write ``worker``'s heartbeat and renew the leases of ``held`` (job id, claim) that are still its own."""
        args: list[str | float] = [worker, self.lease, keys.JOB_PREFIX]
        for job_id, claim in held:
            args += [job_id, claim]
        now, since, renewed = self._beat(keys=[keys.WORKERS, keys.WORKERS_STEADY, keys.LEASES], args=args)
        return Beat(float(now), float(since), int(renewed))

    def renew(self, job_id: str, claim: str) -> bool:
        """Right before a call: True if ``claim`` still holds the job (its lease is renewed), False if it was given away."""
        return bool(self._renew(keys=[keys.job(job_id), keys.LEASES], args=[job_id, claim, self.lease]))

    def workers(self) -> list[WorkerBeat]:
        """Every worker on record, latest heartbeat first."""
        found = cast(list[tuple[str, float]], self._redis.zrevrange(keys.WORKERS, 0, -1, withscores=True))
        return [WorkerBeat(worker, float(at)) for worker, at in found]

    def lease_of(self, job_id: str) -> float | None:
        """When the job's lease ends (Redis's clock), or None: nobody holds it."""
        score = self._redis.zscore(keys.LEASES, job_id)
        return float(score) if score is not None else None

    def now(self) -> float:
        """Redis's clock, which every lease and heartbeat is measured by."""
        seconds, micros = self._redis.time()
        return seconds + micros / 1_000_000

    def forget_gone(self, now: float) -> int:
        """Drop workers whose last heartbeat is older than :data:`FORGET_WORKERS_AFTER`; returns how many."""
        gone = cast(list[str], self._redis.zrangebyscore(keys.WORKERS, "-inf", now - FORGET_WORKERS_AFTER))
        if not gone:
            return 0
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(keys.WORKERS, *gone)
        pipe.hdel(keys.WORKERS_STEADY, *gone)
        pipe.execute()
        return len(gone)

    def recovered(self) -> int:
        """Jobs given back after their holder's lease lapsed, since the counter began (``payq_jobs_recovered_total``)."""
        return int(cast(str | None, self._redis.get(keys.RECOVERED)) or 0)
