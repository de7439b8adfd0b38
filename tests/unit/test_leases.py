"""The rules of ownership (tasks/store/leases.py) as tables: is a holder alive, may a worker judge, what a copy of a running job does."""

from __future__ import annotations

import pytest

from tasks.states import Verdict
from tasks.store.leases import beat_every, copy_verdict, holder_alive, lease_end, may_recover, needs_check, run_broken, steady

LEASE = 10.0
NOW = 1_000.0


@pytest.mark.parametrize(
    ("lease_until", "alive"),
    [
        pytest.param(NOW + 5, True, id="lease-stands"),
        pytest.param(NOW + 0.001, True, id="lease-ends-just-after-now"),
        pytest.param(NOW, False, id="lease-ends-now"),
        pytest.param(NOW - 1, False, id="lease-lapsed"),
        pytest.param(None, False, id="no-lease-on-record"),
    ],
)
def test_a_holder_is_alive_while_its_lease_stands(lease_until: float | None, alive: bool) -> None:
    assert holder_alive(lease_until, NOW) is alive


@pytest.mark.parametrize(
    ("last_beat", "broken"),
    [
        pytest.param(None, True, id="first-beat"),
        pytest.param(NOW - 2, False, id="on-time"),
        pytest.param(NOW - LEASE / 2, False, id="half-a-lease-late"),
        pytest.param(NOW - LEASE / 2 - 0.1, True, id="over-half-a-lease-late"),
        pytest.param(NOW - 15, True, id="after-a-15s-redis-outage"),
    ],
)
def test_a_heartbeat_after_a_gap_of_over_half_a_lease_starts_a_new_run(last_beat: float | None, broken: bool) -> None:
    assert run_broken(last_beat, NOW, LEASE) is broken


@pytest.mark.parametrize(
    ("last_beat", "since", "judges"),
    [
        pytest.param(NOW - 1, NOW - 60, True, id="beating-for-a-minute"),
        pytest.param(NOW - 1, NOW - LEASE, True, id="beating-for-exactly-a-lease"),
        pytest.param(NOW - 1, NOW - 9, False, id="beating-for-less-than-a-lease"),
        pytest.param(NOW - 6, NOW - 60, False, id="its-own-beats-stopped"),
        pytest.param(None, None, False, id="never-beat"),
        pytest.param(NOW - 1, None, False, id="no-run-on-record"),
    ],
)
def test_only_a_worker_beating_steadily_for_a_lease_may_judge_others(last_beat: float | None, since: float | None, judges: bool) -> None:
    assert steady(last_beat, since, NOW, LEASE) is judges


# (lease_until, claimant's last beat, claimant's steady since) -> verdict for a copy of a running job
COPY_TABLE = [
    pytest.param(NOW + 8, NOW - 1, NOW - 60, Verdict.HELD, id="holder-alive-steady-claimant"),
    pytest.param(NOW + 8, None, None, Verdict.HELD, id="holder-alive-same-message-back"),
    pytest.param(NOW - 1, NOW - 1, NOW - 60, Verdict.RUN, id="lease-lapsed-steady-claimant-takes-over"),
    pytest.param(None, NOW - 1, NOW - 60, Verdict.RUN, id="no-lease-on-record-steady-claimant"),
    pytest.param(NOW - 1, NOW - 1, NOW - 3, Verdict.HELD, id="lease-lapsed-claimant-just-back-after-redis-outage"),
    pytest.param(NOW - 1, None, None, Verdict.HELD, id="lease-lapsed-claimant-never-beat"),
    pytest.param(NOW - 1, NOW - 7, NOW - 60, Verdict.HELD, id="lease-lapsed-claimant-itself-paused"),
]


@pytest.mark.parametrize(("lease_until", "last_beat", "since", "verdict"), COPY_TABLE)
def test_a_copy_of_a_running_job_calls_only_once_the_lease_lapsed_and_only_from_a_steady_worker(
    lease_until: float | None, last_beat: float | None, since: float | None, verdict: Verdict,
) -> None:
    assert copy_verdict(lease_until, last_beat, since, NOW, LEASE) is verdict


@pytest.mark.parametrize(
    ("lease_until", "last_beat", "since", "recovers"),
    [
        pytest.param(NOW - 1, NOW - 1, NOW - 60, True, id="lapsed-steady-sweeper"),
        pytest.param(NOW + 1, NOW - 1, NOW - 60, False, id="lease-stands"),
        pytest.param(NOW - 1, NOW - 1, NOW - 2, False, id="sweeper-just-back-after-redis-outage"),
        pytest.param(None, NOW - 1, NOW - 60, False, id="no-lease"),
    ],
)
def test_a_job_is_given_back_when_its_lease_lapsed_by_a_steady_sweeper(
    lease_until: float | None, last_beat: float | None, since: float | None, recovers: bool,
) -> None:
    assert may_recover(lease_until, last_beat, since, NOW, LEASE) is recovers


@pytest.mark.parametrize(
    ("held_for", "check"),
    [
        pytest.param(0.01, False, id="just-claimed"),
        pytest.param(4.9, False, id="under-half-a-lease"),
        pytest.param(5.0, True, id="half-a-lease"),
        pytest.param(30.0, True, id="resumed-after-a-stop"),
    ],
)
def test_a_worker_asks_redis_before_calling_only_when_its_claim_is_half_a_lease_old(held_for: float, check: bool) -> None:
    assert needs_check(held_for, LEASE) is check


def test_a_holder_beats_five_times_per_lease() -> None:
    assert beat_every(LEASE) == 2.0


@pytest.mark.parametrize(("now", "lease", "end"), [
    (1_000.0, 10.0, 1_010),        # a whole second: kept
    (1_000.000001, 10.0, 1_011),   # a moment past it: the next, never earlier than asked
    (1_000.999, 10.0, 1_011),
    (1_765_000_000.25, 10.0, 1_765_000_011),
])
def test_a_lease_ends_on_the_whole_second_at_or_after_its_length(now: float, lease: float, end: int) -> None:
    assert lease_end(now, lease) == end
    assert isinstance(lease_end(now, lease), int)
