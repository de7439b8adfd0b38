"""When a job runs again: pure functions, randomness injected so tests can pin it."""

from __future__ import annotations

import random
from collections.abc import Callable


def compute_backoff(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): "full jitter", uniform in [0, min(cap, base * 2^(attempt-1))].

    Full jitter spreads a crowd of failed jobs evenly instead of sending them
    back in synchronised waves.
    """
    ceiling = min(cap, base * float(1 << min(max(attempt - 1, 0), 62)))
    return rand() * ceiling


def retry_after_due(now: float, seconds: float, jitter: float, rand: Callable[[], float] = random.random) -> float:
    """The time to run again after the API said "in ``seconds``": that, plus up to ``jitter``, never earlier."""
    return now + seconds + rand() * jitter
