"""The benchmark's table says why a target is missed, from the run's own figures (issue 23: a miss nobody explains is worse than none)."""

from __future__ import annotations

from benchmarks.report import Row, render_markdown, render_text


def test_a_missed_target_shows_its_reason_and_a_met_one_shows_none() -> None:
    rows = [Row("1. Drain", "payq / bare Celery", "0.91", "≥ 1.0", False, "Redis costs 0.14 ms more a job"),
            Row("1. Drain", "duplicates", "0", "0", True, "never shown"), Row("1. Drain", "others' load", "0.02 cores")]

    markdown = render_markdown("run", rows).splitlines()
    text = render_text("run", rows)

    assert "| payq / bare Celery | 0.91 | ≥ 1.0 | ✗ missed: Redis costs 0.14 ms more a job |" in markdown
    assert "| duplicates | 0 | 0 | ✓ |" in markdown
    assert "| others' load | 0.02 cores |  |  |" in markdown
    assert "MISSED (Redis costs 0.14 ms more a job)" in text and "never shown" not in text
