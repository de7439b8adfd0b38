"""Scenario 13's pure parts: reading a callgrind dump's total, and the rows made of the runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.redis_instructions import rows, totals

DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
events: Ir
summary: 0

fn=(1) main
0 12
totals: 250606
"""


def test_the_total_is_the_totals_line_not_the_summary_which_reads_0_after_zeroing(tmp_path: Path) -> None:
    dump = tmp_path / "redis.1.out.1"
    dump.write_text(DUMP)
    assert totals(dump) == 250606


def test_a_dump_without_totals_is_an_error_naming_it(tmp_path: Path) -> None:
    dump = tmp_path / "redis.1.out.2"
    dump.write_text("summary: 5\n")
    with pytest.raises(ValueError, match=r"redis\.1\.out\.2: no totals line"):
        totals(dump)


def test_the_rows_give_each_run_and_the_ratios() -> None:
    figures = {"captures": 300, "runs": [
        {"system": "bare-celery", "notifications": "off", "instructions_per_job": 70_000},
        {"system": "payq", "notifications": "off", "instructions_per_job": 700_000},
        {"system": "payq", "notifications": "on", "instructions_per_job": 770_000},
    ]}
    found = {row.metric: row.value for row in rows(figures)}
    assert found["bare-celery"] == "70,000 instructions"
    assert found["payq / bare Celery"] == "10.00"
    assert found["payq, notifications on / off"] == "1.10"
