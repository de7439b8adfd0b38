"""What Redis keeps per settled trip: settle trips through real workers, then read ``INFO memory`` and ``MEMORY USAGE``.

A trip here is what a store backend's checkout makes: one capture, which
chains its payment-status report, and the trip's books. Ids are shaped as a
store backend's usually are (a short store id, a UUID trip id): a record's
bytes grow with the length of its ids, which are in its key and its books.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

import redis

from tasks.producer import Producer, prepare
from tasks.redis import keys

STORE = "store-0042"
AMOUNT = {"amount": "12.34", "code": "USD"}
_CHUNK = 500


@dataclass(frozen=True)
class Footprint:
    """Redis's growth for ``trips`` settled trips: ``used_memory`` before and after, and each kind of key's count and mean size."""

    trips: int
    before: int
    after: int
    kinds: dict[str, tuple[int, float]]
    books_only: int | None = None  # used_memory once the job records are deleted: what the books (kept longer) hold

    @property
    def per_trip(self) -> float:
        """Bytes of ``used_memory`` a settled trip added."""
        return (self.after - self.before) / self.trips

    @property
    def books_per_trip(self) -> float | None:
        """Of :attr:`per_trip`, the trip's books (the rest is its job records)."""
        return None if self.books_only is None else (self.books_only - self.before) / self.trips


def trip_ids(count: int) -> list[str]:
    """``count`` distinct trip ids, UUIDs as a store backend sends them."""
    return [str(uuid.uuid4()) for _ in range(count)]


def settle_trips(producer: Producer, client: redis.Redis, trips: list[str], reported: Callable[[], int], timeout: float) -> None:
    """Capture every trip in ``trips`` and wait until each capture and its report have settled.

    ``reported()`` says how many reports the API has taken so far (of these trips and any before them).
    """
    start = reported()
    jobs = [prepare("capture", {"storeId": STORE, "shoppingTripId": trip, "amount": dict(AMOUNT)}) for trip in trips]
    for first in range(0, len(jobs), _CHUNK):
        producer.publish(jobs[first:first + _CHUNK])
    deadline = time.monotonic() + timeout
    while reported() - start < len(trips) or client.zcard(keys.ACTIVE) or client.zcard(keys.LEASES):
        if time.monotonic() > deadline:
            raise AssertionError(f"{reported() - start} of {len(trips)} trips reported, {client.zcard(keys.ACTIVE)} jobs live after {timeout:g}s")
        time.sleep(0.2)  # poll interval, bounded by the deadline


def used_memory(client: redis.Redis) -> int:
    """``INFO memory`` ``used_memory``, bytes."""
    return int(cast(dict[str, int], client.info("memory"))["used_memory"])


def key_kinds(client: redis.Redis, sample: int = 200) -> dict[str, tuple[int, float]]:
    """Per kind of payq key (``job:capture``, ``job:feedback``, ``trip``, ...): how many, and the mean ``MEMORY USAGE`` of up to ``sample``."""
    names: dict[str, list[str]] = defaultdict(list)
    for key in client.scan_iter(match=f"{keys.PREFIX}:*", count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        parts = name.split(":")
        kind = f"job:{parts[2]}" if parts[1] == "job" and len(parts) > 2 else parts[1]
        names[kind].append(name)
    kinds = {}
    for kind, found in names.items():
        sizes = [int(client.memory_usage(name) or 0) for name in found[:sample]]
        kinds[kind] = (len(found), sum(sizes) / len(sizes))
    return kinds


def measure(producer: Producer, client: redis.Redis, count: int, reported: Callable[[], int], timeout: float) -> Footprint:
    """Settle ``count`` trips after a warm-up of a few (queues, paces, bindings made once); Redis's growth for them."""
    settle_trips(producer, client, trip_ids(20), reported, timeout)
    before = used_memory(client)
    trips = trip_ids(count)
    settle_trips(producer, client, trips, reported, timeout)
    return Footprint(count, before, used_memory(client), key_kinds(client))


def without_records(client: redis.Redis, found: Footprint) -> Footprint:
    """``found`` with :attr:`Footprint.books_only` measured: every job record deleted (as their shorter retention will)."""
    for key in client.scan_iter(match=f"{keys.JOB_PREFIX}*", count=1000):
        client.unlink(key)
    time.sleep(0.5)  # UNLINK frees in the background: a moment for it, then the figure is read
    return replace(found, books_only=used_memory(client))
