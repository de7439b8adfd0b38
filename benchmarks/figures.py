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


def spread(values: Sequence[float]) -> dict[str, float]:
    """The median of repeated figures, their lowest and highest, and the widest gap from the median in % of it.

    A quick run's figures swing with the machine: the median of a few rounds is
    the figure, and the spread says how far to trust it.
    """
    if not values:
        return {"median": math.nan, "low": math.nan, "high": math.nan, "pct": math.nan, "n": 0}
    ordered = sorted(values)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    pct = 100 * max(median - ordered[0], ordered[-1] - median) / median if median else math.nan
    return {"median": median, "low": ordered[0], "high": ordered[-1], "pct": round(pct, 1), "n": len(ordered)}


def with_spread(s: dict[str, float], digits: int = 2) -> str:
    """``1.05 (±3.1%: 1.02–1.08, 3 rounds)``; just the figure for one round."""
    if s["n"] <= 1:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} (±{s['pct']:.1f}%: {s['low']:.{digits}f}–{s['high']:.{digits}f}, {s['n']:.0f} rounds)"
