"""The Workers panel's shaping: live or stopped by the last heartbeat, steady or not, each worker's held jobs, and those of no listed worker."""

from __future__ import annotations

import pytest

from payq.serve.console.fleet import Beating, Lease, shape

LEASE = 10.0
NOW = 1_800_000_000.0


def held(job_id: str, holder: str | None, ends_in: float) -> Lease:
    return Lease(job_id, NOW + ends_in, holder, "capture", "s1", f"t-{job_id}")


@pytest.mark.parametrize(("last_beat_ago", "beating_for", "live", "steady"), [
    (0.0, 60.0, True, True),        # beats now, unbroken for longer than a lease
    (6.0, 60.0, True, False),       # within a lease (live, as payq stats counts) but over half a lease since its beat: not steady
    (1.0, 4.0, True, False),        # just (re)started: beating for less than a lease
    (1.0, None, True, False),       # no run on record
    (10.0, 60.0, True, False),      # exactly a lease ago: still live
    (10.5, 60.0, False, False),     # older than a lease: stopped
    (1800.0, 3600.0, False, False),
])
def test_a_worker_is_live_within_a_lease_of_its_last_beat_and_steady_only_after_an_unbroken_lease(
    last_beat_ago: float, beating_for: float | None, live: bool, steady: bool,
) -> None:
    since = None if beating_for is None else NOW - beating_for
    live_rows, stopped_rows, _ = shape([Beating("w1", NOW - last_beat_ago, since)], [], NOW, LEASE)
    [row] = live_rows + stopped_rows
    assert (row in live_rows, row.steady, row.age) == (live, steady, last_beat_ago)


def test_each_worker_lists_its_own_jobs_soonest_lease_end_first_and_unknown_holders_apart() -> None:
    beats = [Beating("old", NOW - 30, NOW - 300), Beating("a", NOW - 1, NOW - 100), Beating("b", NOW - 0.5, NOW - 100)]
    leases = [held("j3", "a", 9), held("j1", "a", 2), held("j2", "old", -20), held("j4", "gone", 5), held("j5", None, 1)]
    live, stopped, unlisted = shape(beats, leases, NOW, LEASE)
    assert [(w.worker, [j.job_id for j in w.jobs]) for w in live] == [("b", []), ("a", ["j1", "j3"])], "latest beat first"
    assert [(w.worker, [j.job_id for j in w.jobs]) for w in stopped] == [("old", ["j2"])], "a stopped worker keeps its lapsed job"
    assert [j.job_id for j in unlisted] == ["j5", "j4"], "holders not listed (or records gone), soonest lease end first"


def test_no_workers_and_no_leases_show_nothing() -> None:
    assert shape([], [], NOW, LEASE) == ([], [], [])
