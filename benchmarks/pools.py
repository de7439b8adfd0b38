"""Which pool, concurrency and processes per host suit payq's I/O-bound jobs: the same drain for each shape.

Every run also counts calls per trip, so a pool that runs a job twice (as
Celery's gevent pool did when kombu's connection pool overflowed) shows it.
"""

from __future__ import annotations

from typing import Any

from benchmarks.drain import DrainResult, run_drain
from benchmarks.stack import Stack
from benchmarks.workers import Shape

SHAPES: list[Shape] = [
    Shape("threads", 32, 1),
    Shape("threads", 64, 1),
    Shape("threads", 16, 2),
    Shape("threads", 32, 2),
    Shape("threads", 64, 2),
    Shape("threads", 32, 4),
    Shape("gevent", 100, 1),
    Shape("gevent", 100, 2),
    Shape("prefork", 8, 1),
    Shape("prefork", 32, 1),
]


def parse_shape(text: str) -> Shape:
    """``threads:2x32`` → 2 processes of a 32-thread pool."""
    pool, _, size = text.partition(":")
    processes, _, concurrency = size.partition("x")
    return Shape(pool, int(concurrency), int(processes))


def run_pools(stack: Stack, captures: int, latencies: tuple[float, ...], shapes: list[Shape] | None = None,
              tweaks: tuple[str, ...] = (), say: Any = print) -> list[dict[str, Any]]:
    """Drain ``captures`` at each latency for each shape; one result per (shape, latency)."""
    results: list[DrainResult] = []
    for latency in latencies:
        for shape in shapes or SHAPES:
            results.append(run_drain(stack, "payq", shape, captures, latency, tweaks=tweaks, say=say))
    return [r.as_dict() for r in results]
