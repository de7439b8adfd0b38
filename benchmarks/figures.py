"""Small statistics for the report: percentiles and rounding."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, one decimal."""
    return round(seconds * 1000, 1) if math.isfinite(seconds) else math.nan


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of ``values`` (seconds) in milliseconds, and the count."""
    return {"n": len(values), "p50_ms": ms(percentile(values, 50)), "p99_ms": ms(percentile(values, 99)),
            "max_ms": ms(max(values)) if values else math.nan}
