"""Which deferred jobs a lifted pause releases, and how a lift is told: pure rules as tables."""

from __future__ import annotations

import pytest

from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind
from tasks.jobs.deferral import Deferral
from tasks.pacing.endpoints import Lifted, lifted_from, waits_for_the_endpoint
from tasks.states import DeferCause


def deferral(cause: DeferCause, status: int | None = None) -> str:
    failure = Failure(FailureKind.THROTTLED if status == 429 else FailureKind.SERVER_ERROR, status) if status else None
    return Deferral(cause, until=100.0, operation=Operation.CAPTURE, delay=30.0 if status else None, failure=failure).to_json()


@pytest.mark.parametrize(("defer", "released"), [
    (deferral(DeferCause.PAUSED), True),                  # waits for the pause to end
    (deferral(DeferCause.PACED), True),                   # waits for its turn at the (learned) pace
    (deferral(DeferCause.RETRY_AFTER, 429), True),        # was itself throttled: waits out the 429's Retry-After
    (deferral(DeferCause.RETRY_AFTER, 503), False),       # waits for the API to recover: lifting changes nothing
    (deferral(DeferCause.BACKOFF, 500), False),
    ("not json", False),
])
def test_a_lift_releases_only_the_jobs_that_wait_for_the_endpoint_s_limit(defer: str, released: bool) -> None:
    assert waits_for_the_endpoint(defer) is released


def test_a_lift_says_what_it_ended_forgot_and_released_and_reads_back_from_the_log() -> None:
    lifted = Lifted(Operation.REFUND, "ops (payq console)", 1_800_000_000.0, 1_800_000_600.0, 4.5, 3)
    assert lifted.describe() == ("refund: ended its pause (it ran until 2027-01-15T08:10:00Z); "
                                 "forgot its learned pace (4.5 calls/s accepted before its last 429); 3 deferred jobs made due now")
    nothing = Lifted(Operation.CAPTURE, "me@host (payq pace reset)", 1.0, None, None, 1)
    assert nothing.describe() == "capture: no pause to end; no learned pace to forget; 1 deferred job made due now"
    assert lifted_from(lifted.to_json()) == lifted
