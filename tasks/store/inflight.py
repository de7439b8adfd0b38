"""A worker's in-flight lists: a message it fetched stays in Redis, in a list of its own, until it is settled.

The fetch (``lua/fetch.lua``) moves each message from its queue into
``payq:inflight:<worker>:<queue>`` in one atomic step (``LMOVE``, as Sidekiq
Pro's super_fetch and BullMQ's active list keep a fetched job), so no message
is ever only in a worker's memory. The same round trip first settles what the
worker finished since its last fetch: an acknowledged message leaves the list,
one given back leaves it for the head of its queue. A worker that dies keeps
its lists; once its heartbeat is a lease old, a live worker's sweep
(``lua/recover.lua``) puts each message back as its job's record says
(:func:`held_verdict`): whatever the depth of the queue, a dead worker's
fetched and running jobs come back within about a lease.

``payq:inflight`` (a sorted set) names the workers that hold lists, with the
time of their first fetch (which dates a worker that died before its first heartbeat).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import redis

from tasks.redis import keys, scripts
from tasks.states import JobState


class Held(StrEnum):
    """What becomes of a message in a dead worker's in-flight list (``recover.lua`` carries it out)."""

    BACK = "back"  # the job waits for it (fetched, never begun; or no record: BEGIN adopts it): to the head of its queue
    RECOVER = "recover"  # begun and its lease lapsed: its claim cleared, back to the head of its queue
    KEEP = "keep"  # the dead worker holds the job under a lease that stands: left for the next look, once it lapsed
    DROP = "drop"  # the job moved on (finished, deferred, waiting for its capture) or another worker holds it


def held_verdict(state: str | None, holder: str | None, lease_until: float | None, dead: str, now: float) -> Held:
    """The rule for one message of dead worker ``dead``, from its job's record (``state``, ``holder``) and lease at ``now``."""
    if state is None or state == JobState.QUEUED:
        return Held.BACK
    if state != JobState.RUNNING:
        return Held.DROP
    if lease_until is None or lease_until <= now:
        return Held.RECOVER
    return Held.KEEP if holder == dead else Held.DROP


@dataclass(frozen=True)
class Settled:
    """A message a worker is done with, from ``queue``: acknowledged, or (``back``) given back to the head of its queue."""

    queue: str
    message: bytes | str
    back: bool = False


@dataclass(frozen=True)
class Fetched:
    """What a fetch took, as (queue, message) in the order taken; with nothing, ``wake`` is where to block on ``payq:wake`` from."""

    messages: list[tuple[str, bytes | str]]
    wake: str | None


def ack_commands(worker: str, acks: Iterable[Settled]) -> list[tuple[Any, ...]]:
    """The commands that acknowledge ``acks``: each message leaves the worker's in-flight list (``LREM``), sent ahead of
    a fetch in the same round trip rather than inside it, where each message's bytes would be made a Lua string."""
    return [("LREM", keys.inflight(worker, s.queue), 1, s.message) for s in acks]


def fetch_call(worker: str, queues: Sequence[str], wanted: int, given_back: Iterable[Settled]) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of ``lua/fetch.lua``: give back ``given_back``, then take up to ``wanted`` messages from ``queues``, first queue first."""
    backs = list(given_back)
    if any(not s.back for s in backs):
        raise ValueError("fetch.lua only gives back: acknowledge with ack_commands")
    order = list(dict.fromkeys([*queues, *(s.queue for s in backs)]))
    index = {queue: i + 1 for i, queue in enumerate(order)}
    call_keys = [keys.INFLIGHT]
    for queue in order:
        call_keys += [queue, keys.inflight(worker, queue)]
    args: list[Any] = [worker, wanted if queues else 0, len(backs)]
    for s in backs:
        args += [index[s.queue], s.message]
    return call_keys, args


def read_fetch(reply: list[Any], call_keys: Sequence[str]) -> Fetched:
    """The reply of ``lua/fetch.lua`` called with ``call_keys``."""
    head = reply[0]
    if len(reply) == 1:
        return Fetched([], head.decode() if isinstance(head, bytes) else str(head))
    queue_of = {i: call_keys[2 * i - 1] for i in range(1, (len(call_keys) - 1) // 2 + 1)}
    pairs = reply[1:]
    return Fetched([(queue_of[int(pairs[i])], pairs[i + 1]) for i in range(0, len(pairs), 2)], None)


class InFlight:
    """One worker's in-flight lists through a synchronous client: settle what it is done with, give back what it holds."""

    def __init__(self, client: redis.Redis, worker: str) -> None:
        self._redis = client
        self.worker = worker
        self._fetch = scripts.register(client, "fetch")

    def settle(self, settled: Sequence[Settled]) -> None:
        """Settle ``settled`` (as the next fetch would), taking nothing."""
        if not settled:
            return
        pipe = self._redis.pipeline(transaction=False)
        for _, key, count, message in ack_commands(self.worker, [s for s in settled if not s.back]):
            pipe.lrem(key, count, message)
        backs = [s for s in settled if s.back]
        if backs:
            call_keys, args = fetch_call(self.worker, [], 0, backs)
            self._fetch(keys=call_keys, args=args, client=pipe)
        pipe.execute()

    def held(self, queues: Sequence[str]) -> list[Settled]:
        """Every message in the worker's lists for ``queues``, newest first per queue."""
        pipe = self._redis.pipeline(transaction=False)
        for queue in queues:
            pipe.lrange(keys.inflight(self.worker, queue), 0, -1)
        found = cast(list[list[bytes | str]], pipe.execute())
        return [Settled(queue, message, back=True) for queue, messages in zip(queues, found, strict=True) for message in messages]

    def give_back_all(self, queues: Sequence[str]) -> int:
        """Put everything the worker's lists for ``queues`` hold back at the head of its queue, the oldest taken first; how many."""
        held = self.held(queues)
        self.settle(held)
        return len(held)
