"""Writes that survive a failover: confirmed by the replicas in sync now, refused only below the floor an operator sets.

Replication is asynchronous: a primary killed a moment after it answered may
take that write with it, and Sentinel promotes a replica that never saw it.
So before payq says something happened (an enqueue's answer, a claim before
its API call, an outcome before its message is acknowledged) it asks the
primary to ``WAIT`` until the replicas that are connected and in sync *now*
hold everything written so far: Kafka's ``acks=all``. Which those are is read
from ``INFO replication`` (online, acknowledged within the last second), at
most once a second per process. A replica that does not confirm within
``PAYQ_REDIS_REPLICAS_TIMEOUT`` leaves the in-sync set until its offset
reaches the primary's at the miss, so a slow or dead replica costs one
timeout, not one per write.

``PAYQ_REDIS_MIN_REPLICAS`` is the floor (Kafka's ``min.insync.replicas``):
below it every confirmation is refused at once (:class:`NotReplicated`, no
``WAIT``); at 0 (the default) payq goes on with the primary alone and reports
itself degraded (:class:`ReplicaState`).

``WAIT`` covers what its own connection wrote, and a pooled client's next
command may take another connection; so the wait is preceded, on the same
connection, by a write of its own (``INCR`` of a probe key). The replication
stream is one ordered log: a replica that has the probe has every write the
primary made before it, including the one to confirm. With no replica in
sync nothing is sent at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from payapi.errors import NotReplicated
from tasks.redis import keys
from tasks.redis.patience import REDIS_FAULTS, OnFault, Patience

T = TypeVar("T")

IN_SYNC_LAG = 1  # seconds since a replica's last acknowledgement (it sends one every second): more, and it has fallen behind
LOOK_EVERY = 1.0  # seconds one look at INFO replication is trusted: a replica back is seen within about this


class ReplicaState(StrEnum):
    """What the replicas in sync now mean for payq's writes."""

    SAFE = "safe"  # at least one replica holds each write payq reports, or none was ever expected (one Redis, no failover)
    DEGRADED = "degraded"  # no replica in sync where one is expected: payq goes on with the primary alone (the floor allows it)
    REFUSING = "refusing"  # fewer replicas in sync than PAYQ_REDIS_MIN_REPLICAS: enqueues are refused and jobs wait


@dataclass(frozen=True)
class Replica:
    """One replica as the primary's ``INFO replication`` lists it (``slaveN``)."""

    address: str  # ip:port
    online: bool
    offset: int  # the replication offset it last acknowledged
    lag: int  # seconds since it last acknowledged


def replicas_in(info: Mapping[str, Any]) -> list[Replica]:
    """The replicas in the primary's ``INFO replication`` (redis-py parses each ``slaveN`` line into a dict)."""
    found = [value for name, value in info.items() if name.startswith("slave") and isinstance(value, dict)]
    return [Replica(f"{r.get('ip')}:{r.get('port')}", r.get("state") == "online", int(r.get("offset", 0)), int(r.get("lag", 0)))
            for r in found]


def in_sync(replicas: Sequence[Replica], behind: Mapping[str, int]) -> list[Replica]:
    """The replicas in sync now: online, acknowledged within :data:`IN_SYNC_LAG`, and caught up with any WAIT they missed (``behind``)."""
    return [r for r in replicas if r.online and r.lag <= IN_SYNC_LAG and r.offset >= behind.get(r.address, 0)]


def still_behind(behind: Mapping[str, int], replicas: Sequence[Replica]) -> dict[str, int]:
    """``behind`` without the replicas that caught up (their offset reached the mark) or left."""
    offsets = {r.address: r.offset for r in replicas}
    return {address: mark for address, mark in behind.items() if address in offsets and offsets[address] < mark}


def left_behind(synced: Sequence[Replica], missing: int, mark: int) -> dict[str, int]:
    """After a WAIT that ``missing`` of ``synced`` did not confirm: those furthest behind, each out of sync until it reaches ``mark``."""
    slowest = sorted(synced, key=lambda r: r.offset)[:missing]
    return {r.address: mark for r in slowest}


def state_of(synced: int, floor: int, expected: bool) -> ReplicaState:
    """Refusing below ``floor``; degraded with none in sync where a replica is ``expected`` (a failover is configured, or one is connected)."""
    if synced < floor:
        return ReplicaState.REFUSING
    if synced == 0 and expected:
        return ReplicaState.DEGRADED
    return ReplicaState.SAFE


@dataclass(frozen=True)
class Sighting:
    """One look at the replicas: how many are connected and in sync, the floor, and what that means (:class:`ReplicaState`)."""

    connected: int
    in_sync: int
    floor: int
    state: ReplicaState

    def describe(self) -> str:
        """For logs and refusals: the counts and the floor."""
        return f"{self.in_sync} of {self.connected} Redis replica(s) in sync, PAYQ_REDIS_MIN_REPLICAS {self.floor}"


class Replicas:
    """The replicas a confirmed write waits for, seen at most once a second; shared by a process's threads."""

    def __init__(self, floor: int, timeout: float, failover: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.floor = floor
        self.timeout = timeout
        self.failover = failover  # the deployment fails over (Sentinel): a replica is expected even when none is connected
        self._clock = clock
        self._lock = threading.Lock()
        self._behind: dict[str, int] = {}  # replicas out of the in-sync set since a WAIT they missed -> the offset they must reach
        self._synced: list[Replica] = []
        self._seen: Sighting | None = None
        self._seen_at = float("-inf")

    def look(self, client: redis.Redis, *, again: bool = False) -> Sighting:
        """The replicas now (``INFO replication`` at most every :data:`LOOK_EVERY` seconds; ``again``: now, proving Redis answers)."""
        if again or self._fresh() is None:
            self._saw(client.info("replication"))
        return self._current()

    async def look_async(self, client: aioredis.Redis, *, again: bool = False) -> Sighting:
        """:meth:`look` on an asynchronous client."""
        if again or self._fresh() is None:
            self._saw(await client.info("replication"))
        return self._current()

    def confirm(self, client: redis.Redis) -> None:
        """Return once the replicas in sync hold every write made so far; :class:`NotReplicated` if fewer than the floor do."""
        wanted = self._wanted(self.look(client))
        if not wanted:
            return
        pipe = client.pipeline(transaction=False)
        pipe.incr(keys.REPLICA_PROBE)
        pipe.execute_command("WAIT", wanted, int(self.timeout * 1000))  # type: ignore[no-untyped-call]
        _, acked = pipe.execute()
        if int(acked) < wanted:
            self._missed(client.info("replication"), wanted, int(acked))

    async def confirm_async(self, client: aioredis.Redis) -> None:
        """:meth:`confirm` on an asynchronous client."""
        wanted = self._wanted(await self.look_async(client))
        if not wanted:
            return
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(keys.REPLICA_PROBE)
            pipe.execute_command("WAIT", wanted, int(self.timeout * 1000))
            _, acked = await pipe.execute()
        if int(acked) < wanted:
            self._missed(await client.info("replication"), wanted, int(acked))

    def confirmed(self, patience: Patience, client: redis.Redis, write: Callable[[], T], on_fault: OnFault | None = None) -> T:
        """``write()`` and then :meth:`confirm`, both within ``patience``.

        A write that met a connection fault is made again whole: the primary
        now in charge may never have seen it (each of payq's writes may be made
        twice: its claim or the job's state makes the second the same one). One
        only short of replicas is not made again, only confirmed again.
        """
        done: list[T] = []

        def step() -> T:
            if not done:
                done.append(write())
            self.confirm(client)
            return done[0]

        def fault(exc: BaseException) -> None:
            if not isinstance(exc, NotReplicated):
                done.clear()
            if on_fault is not None:
                on_fault(exc)

        return patience.call(step, faults=(*REDIS_FAULTS, NotReplicated), on_fault=fault)

    def _fresh(self) -> Sighting | None:
        with self._lock:
            return self._seen if self._clock() - self._seen_at < LOOK_EVERY else None

    def _current(self) -> Sighting:
        with self._lock:
            assert self._seen is not None
            return self._seen

    def _saw(self, info: Mapping[str, Any]) -> None:
        replicas = replicas_in(info)
        with self._lock:
            self._behind = still_behind(self._behind, replicas)
            self._synced = in_sync(replicas, self._behind)
            synced = len(self._synced)
            self._seen = Sighting(len(replicas), synced, self.floor, state_of(synced, self.floor, self.failover or bool(replicas)))
            self._seen_at = self._clock()

    def _wanted(self, seen: Sighting) -> int:
        """How many replicas a write waits for: those in sync; :class:`NotReplicated` at once below the floor."""
        if seen.state is ReplicaState.REFUSING:
            raise NotReplicated(f"{seen.describe()}: below that floor, the write is not yet safe from a failover")
        return seen.in_sync

    def _missed(self, info: Mapping[str, Any], wanted: int, acked: int) -> None:
        """A WAIT that ``wanted - acked`` replicas missed: they leave the in-sync set; :class:`NotReplicated` if the rest are below the floor."""
        mark = int(info.get("master_repl_offset", 0))
        with self._lock:
            self._behind.update(left_behind(self._synced, wanted - acked, mark))
            self._seen_at = float("-inf")  # look again on the next write
        if acked < self.floor:
            raise NotReplicated(
                f"only {acked} of {wanted} Redis replica(s) confirmed the write within {self.timeout:g} s"
                f" (PAYQ_REDIS_MIN_REPLICAS {self.floor}); it is not yet safe from a failover"
            )
