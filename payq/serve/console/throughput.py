"""How many API calls each endpoint has been answering with success lately: the overview's throughput column.

Every worker counts its successful calls per endpoint in tenth-of-a-second
counters, by the tenth each call was sent in (``payq:pace:<op>:ok:<tenth>``,
kept twenty seconds: the pace's measure reads them too, :mod:`tasks.pacing.pacer`). The overview sums the last
:data:`WINDOW` seconds of them, in one MGET, into calls per second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import redis

from payapi.operations import Operation
from tasks.redis import keys

WINDOW = 5.0  # seconds: well within the twenty the counters are kept, and steadier than one second


def tenths(now: float, window: float = WINDOW) -> list[int]:
    """The whole tenths of a second in the ``window`` before ``now``'s tenth (the current one is still being counted)."""
    last = int(now * 10)
    return list(range(last - int(window * 10), last))


def per_second(counts: Sequence[str | None], window: float = WINDOW) -> float:
    """Calls per second from the counters of a window (absent counters: no call then)."""
    return sum(int(c) for c in counts if c) / window


def recent(client: redis.Redis, operations: Iterable[Operation], now: float) -> dict[str, float]:
    """Successful calls per second over the last :data:`WINDOW` seconds, by operation."""
    ops = list(operations)
    span = tenths(now)
    values = cast(list[str | None], client.mget([keys.successes(op, t) for op in ops for t in span]))
    return {op.value: per_second(values[i * len(span) : (i + 1) * len(span)]) for i, op in enumerate(ops)}
