"""A drain that shared the machine with others' work is set aside and run again, a few times at most."""

from __future__ import annotations

import pytest

from benchmarks.drain import OTHERS_LIMIT, DrainResult, quietly


def _result(rate: float, others: float) -> DrainResult:
    return DrainResult(system="payq", shape="threads 4×32", latency_ms=0.0, captures=1, jobs=2, calls=2, rate=rate, seconds=1.0,
                       duplicates=0, missing=0, non_200=0, complete=True, worker_cpu_ms_per_job=1.0, sandbox_cpu_ms_per_job=0.3,
                       redis_cpu_ms_per_job=0.2, worker_rss_mib=1.0, worker_processes=1, other_load_cores=others)


@pytest.mark.parametrize(("others", "kept_rate", "runs", "set_aside"), [
    ([0.0], 100.0, 1, []),                                           # an idle machine: the first run stands
    ([OTHERS_LIMIT], 100.0, 1, []),                                  # at the limit: stands
    ([0.8, 0.05], 101.0, 2, [(100.0, 0.8)]),                         # busy, then idle: the idle one stands
    ([0.8, 0.5, 0.4], 102.0, 3, [(100.0, 0.8), (101.0, 0.5)]),      # busy throughout: the third stands, whatever others used
])
def test_a_busy_run_is_set_aside_and_run_again(others: list[float], kept_rate: float, runs: int,
                                               set_aside: list[tuple[float, float]]) -> None:
    made: list[DrainResult] = []

    def drain() -> DrainResult:
        made.append(_result(100.0 + len(made), others[len(made)]))
        return made[-1]

    kept = quietly(drain, say=lambda _: None, tries=3)

    assert (kept.rate, len(made)) == (kept_rate, runs)
    assert [(a["rate"], a["other_load_cores"]) for a in kept.extra.get("set_aside", [])] == set_aside
