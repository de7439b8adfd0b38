"""What becomes of a dead worker's fetched messages (tasks/store/inflight.py held_verdict), as a table; recover.lua is held to it."""

from __future__ import annotations

import pytest

from tasks.store.inflight import Held, held_verdict

NOW = 1_000.0
DEAD = "host.1.dead"

# (job state, holder, lease end) -> what becomes of the dead worker's copy of the job's message
HELD_TABLE = [
    pytest.param("queued", None, None, Held.BACK, id="fetched-never-begun"),
    pytest.param(None, None, None, Held.BACK, id="no-record-begin-adopts-it"),
    pytest.param("running", DEAD, NOW - 1, Held.RECOVER, id="begun-lease-lapsed"),
    pytest.param("running", DEAD, None, Held.RECOVER, id="begun-no-lease-on-record"),
    pytest.param("running", DEAD, NOW + 3, Held.KEEP, id="begun-after-its-last-beat-lease-stands"),
    pytest.param("running", "host.2.alive", NOW + 8, Held.DROP, id="another-worker-holds-it"),
    pytest.param("running", "host.2.gone", NOW - 1, Held.RECOVER, id="another-holder-whose-lease-lapsed"),
    pytest.param("succeeded", DEAD, None, Held.DROP, id="finished-not-yet-acknowledged"),
    pytest.param("deferred", DEAD, None, Held.DROP, id="deferred-its-set-brings-it-back"),
    pytest.param("dead", DEAD, None, Held.DROP, id="dead-lettered"),
    pytest.param("waiting", None, None, Held.DROP, id="a-refund-waiting-for-its-capture"),
]


@pytest.mark.parametrize(("state", "holder", "lease_until", "held"), HELD_TABLE)
def test_a_dead_workers_message_goes_back_if_its_job_waits_for_it_and_only_then(
    state: str | None, holder: str | None, lease_until: float | None, held: Held,
) -> None:
    assert held_verdict(state, holder, lease_until, DEAD, NOW) is held
