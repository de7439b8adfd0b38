"""Per-store lanes: a queue's messages wait in one list per store, and a worker's fetch takes the stores in turn.

A queue was one list, served first come, first served: a store that enqueued
3,000 captures held every other store's behind them whenever the workers,
not an endpoint's pace, were the bottleneck. Now ``lua/lib/publish.lua``
pushes a store's job onto ``payq:lane:<queue>:<store>`` and, when that lane
was empty, the store onto ``payq:lanes:<queue>`` (the ring). ``lua/fetch.lua``
takes from the store on the ring's right and moves that store to its left, in
rounds where each store takes an equal part of what the worker wants (at least
one message), so a store with 10 jobs waits one turn of each other store for
each of them, whatever their backlogs (as BullMQ Pro's groups and SQS FIFO's message
groups are served). A store's own jobs stay first in, first out.

The queue's own list (named as the queue) is still fetched, before the lanes:
it holds what goes to the head (a late job: recovered, due, given back), and
what has no store: messages of Celery's own ``send_task`` (which the worker
admits, :mod:`tasks.jobs.admission`) and those the previous version published.

A queue's depth is its own list's plus its lanes' (:func:`waiting`), and the
oldest message waiting is among the tails of those lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis

from tasks.redis import keys


def stores_waiting(client: redis.Redis, queues: Sequence[str]) -> dict[str, list[str]]:
    """The stores with messages in each of ``queues``' lanes, in turn (the next first)."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.lrange(keys.ring(queue), 0, -1)
    rings = cast(list[list[bytes | str]], pipe.execute())
    return {queue: [s.decode() if isinstance(s, bytes) else s for s in reversed(ring)] for queue, ring in zip(queues, rings, strict=True)}


def lists_of(client: redis.Redis, queues: Sequence[str]) -> dict[str, list[str]]:
    """Every list a message of each of ``queues`` may wait in: its own, then its stores' lanes, in turn."""
    return {queue: [queue, *(keys.lane(queue, store) for store in stores)] for queue, stores in stores_waiting(client, queues).items()}


def every_key(client: redis.Redis, queues: Sequence[str]) -> list[str]:
    """Every key that holds ``queues``' waiting messages: each one's own list, its lanes, and its ring (to empty them)."""
    return [*(name for names in lists_of(client, queues).values() for name in names), *map(keys.ring, queues)]


@dataclass(frozen=True)
class Waiting:
    """What waits on a queue: how many messages, lanes included, and the next in line of each of its lists (the oldest of each)."""

    depth: int
    next_in_line: list[bytes | str]


def waiting(client: redis.Redis, queues: Sequence[str]) -> dict[str, Waiting]:
    """What waits on each of ``queues`` (two round trips: the rings, then each list's length and tail)."""
    lists = lists_of(client, queues)
    pipe = client.pipeline(transaction=False)
    for names in lists.values():
        for name in names:
            pipe.llen(name)
            pipe.lindex(name, -1)  # workers take from the right
    replies = iter(pipe.execute())
    found = {}
    for queue, names in lists.items():
        depth, tails = 0, []
        for _ in names:
            depth += int(next(replies))
            if (tail := next(replies)) is not None:
                tails.append(tail)
        found[queue] = Waiting(depth, tails)
    return found


def depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    """How many messages wait on each of ``queues``, lanes included."""
    return {queue: w.depth for queue, w in waiting(client, queues).items()}


def messages(client: redis.Redis, queue: str) -> list[bytes | str]:
    """Every message waiting on ``queue``: its own list's, oldest first, then each store's lane's, oldest first, the
    stores in turn (for tools and tests: it reads every message)."""
    names = lists_of(client, [queue])[queue]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.lrange(name, 0, -1)
    found = cast(list[list[bytes | str]], pipe.execute())
    return [message for listed in found for message in reversed(listed)]
