"""Repeated benchmark figures: the median is the figure, the spread how far to trust it."""

from __future__ import annotations

import math

import pytest

from benchmarks.figures import spread, with_spread


@pytest.mark.parametrize(("values", "median", "low", "high", "pct"), [
    ([1.0], 1.0, 1.0, 1.0, 0.0),
    ([1.0, 1.1, 0.9], 1.0, 0.9, 1.1, 10.0),
    ([0.8, 1.0, 1.0, 1.3], 1.0, 0.8, 1.3, 30.0),
    ([2.0, 1.0], 1.5, 1.0, 2.0, 33.3),
])
def test_the_median_and_the_widest_gap_from_it(values: list[float], median: float, low: float, high: float, pct: float) -> None:
    s = spread(values)
    assert (s["median"], s["low"], s["high"], s["pct"], s["n"]) == (pytest.approx(median), low, high, pct, len(values))


def test_no_values_is_no_figure() -> None:
    assert math.isnan(spread([])["median"])


def test_one_round_shows_the_figure_alone_and_several_their_spread() -> None:
    assert with_spread(spread([1.0])) == "1.00"
    assert with_spread(spread([1.02, 1.05, 1.08])) == "1.05 (±2.9%: 1.02–1.08, 3 rounds)"
