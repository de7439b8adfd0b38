"""``python -m benchmarks.memory --soak SECONDS``: steady load for minutes, and whether what it costs levels off.

Enqueues trips (a capture, which chains its report) at a steady rate through
payq's workers with every setting at its default, and prints a line every
interval: trips enqueued and settled, jobs live, the workers' RSS and open file
descriptors (every process of the fleet), Redis's ``used_memory`` and its keys.
At the end it says whether the workers levelled off (the last third against the
middle third) and whether Redis grew as the retention predicts: within the
job records' retention nothing expires, so ``used_memory`` grows by the bytes
of a settled trip (``--trips`` measures them) for each trip, and the steady
state it reaches once the retentions have passed is the model's
(docs/scaling.md), which ``payq stats`` computes from the load it sees
(:func:`tasks.redis.memory.read_memory`): printed as the run ends, under load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.calls import FEEDBACK, CallLog
from benchmarks.stack import Stack
from benchmarks.workers import Fleet, Shape, start_payq
from config.settings import Settings
from tasks.producer import Producer, prepare
from tasks.redis import keys
from tasks.redis.memory import read_memory
from tests.support.memory import AMOUNT, STORE, trip_ids, used_memory

LEVEL = 0.05  # the last third may exceed the middle third by this share and still be level


@dataclass(frozen=True)
class Sample:
    """One interval's figures."""

    at: float            # seconds since the load began
    enqueued: int        # trips
    settled: int         # trips whose report reached the API
    live: int            # jobs enqueued and not settled (payq:active)
    rss_mib: float       # the workers, every process
    fds: int             # the workers' open file descriptors, every process
    used_mib: float      # Redis used_memory
    keys: int            # Redis DBSIZE

    def line(self, base_used: float) -> str:
        grown = (self.used_mib - base_used) * 1048576
        per_trip = f"{grown / self.settled:,.0f} B/trip" if self.settled else "—"
        return (f"{self.at:6.0f}s  trips {self.enqueued:>7,} enqueued {self.settled:>7,} settled {self.live:>5,} live  "
                f"workers {self.rss_mib:6.1f} MiB {self.fds:>4} fds  Redis {self.used_mib:7.1f} MiB ({per_trip}) {self.keys:>8,} keys")


def fds(fleet: Fleet) -> int:
    """Open file descriptors of every process of ``fleet``."""
    total = 0
    for proc in fleet.procs:
        for pid in proc.pids():
            try:
                total += len(os.listdir(Path(f"/proc/{pid}/fd")))
            except OSError:
                continue
    return total


def level(values: list[float]) -> bool:
    """Whether the last third of ``values`` stays within :data:`LEVEL` of the middle third's highest."""
    third = max(1, len(values) // 3)
    middle, last = values[third:2 * third] or values, values[2 * third:] or values
    return max(last) <= max(middle) * (1 + LEVEL)


@dataclass(frozen=True)
class Running:
    """A fresh stack with one payq worker (32 threads) at the default settings, and a producer on its Redis."""

    stack: Stack
    log: CallLog
    fleet: Fleet
    producer: Producer

    def reported(self) -> int:
        """Payment-status reports the API has taken: trips settled."""
        self.log.poll()
        return len(self.log.on(FEEDBACK))


@contextmanager
def running() -> Iterator[Running]:
    """:class:`Running`, stopped and closed on leaving."""
    stack = Stack()
    try:
        sandbox, log = stack.fresh(0.0)
        fleet = start_payq(Shape("threads", 32, 1), stack.redis_url, sandbox.url)
        try:
            fleet.wait_ready()
            yield Running(stack, log, fleet, Producer(Settings(redis_url=stack.redis_url)))
        finally:
            fleet.stop(timeout=5)
    finally:
        stack.close()


def soak(seconds: float, rate: float, every: float, say: Callable[[str], None] = print) -> list[Sample]:
    """Enqueue ``rate`` trips a second for ``seconds`` on a fresh stack with the default settings; a :class:`Sample` every ``every`` seconds."""
    with running() as live:
        client, producer, fleet = live.stack.client, live.producer, live.fleet
        samples: list[Sample] = []
        base_used = used_memory(client) / 1048576
        say(f"soak: {rate:g} trips/s for {seconds:g}s, a line every {every:g}s; Redis at {base_used:.1f} MiB before")
        started = time.monotonic()
        enqueued = 0
        next_sample = started + every
        tick = 0.1
        while (now := time.monotonic()) - started < seconds:
            due = int((now - started) * rate) - enqueued
            if due > 0:
                jobs = [prepare("capture", {"storeId": STORE, "shoppingTripId": trip, "amount": dict(AMOUNT)}) for trip in trip_ids(due)]
                producer.publish(jobs)
                enqueued += due
            if now >= next_sample:
                sample = Sample(round(now - started), enqueued, live.reported(), int(client.zcard(keys.ACTIVE)),
                                fleet.rss_kib() / 1024, fds(fleet), used_memory(client) / 1048576, int(client.dbsize()))
                samples.append(sample)
                say(sample.line(base_used))
                next_sample += every
            time.sleep(max(0.0, min(tick, next_sample - time.monotonic())))  # the enqueue pace's tick
        settings = Settings()
        seen = read_memory(client, settings.job_retention_days, settings.trip_books_retention_days)
        say(f"soak: payq stats under this load: {seen.trips_per_second or 0:.1f} trips/s, a trip "
            f"{seen.per_trip or 0:,.0f} B (sampled MEMORY USAGE), projected steady state "
            f"{(seen.projected or 0) / 2**30:.2f} GiB")
        summary(samples, base_used, say)
        return samples


def summary(samples: list[Sample], base_used: float, say: Callable[[str], None] = print) -> None:
    """Whether the workers levelled off, and Redis's growth per settled trip over the second half of the run."""
    if len(samples) < 3:
        say("soak: too short to judge")
        return
    rss_level, fds_level = level([s.rss_mib for s in samples]), level([float(s.fds) for s in samples])
    half = samples[len(samples) // 2]
    last = samples[-1]
    slope = (last.used_mib - half.used_mib) * 1048576 / max(1, last.settled - half.settled)
    say(f"soak: workers RSS {samples[0].rss_mib:.1f} -> {last.rss_mib:.1f} MiB ({'level' if rss_level else 'GROWING'}), "
        f"fds {samples[0].fds} -> {last.fds} ({'level' if fds_level else 'GROWING'}); Redis grew {slope:,.0f} B per trip settled "
        f"over the second half ({(last.used_mib - base_used):.1f} MiB in all): nothing expires within the records' retention, "
        "so it grows by a settled trip's bytes until the retentions pass")
