"""The demo's plan, its fault script, and how its summary reads: pure, no processes."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import pytest

from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind, Outcome, Permanent, RetryAfter, Transient, classify
from payq.stack.plan import UNKNOWN_TRIP, DemoPlan, fault_script
from payq.stack.report import Snapshot, Summary, retry_cause
from sandbox.faults import Fault, parse_script
from tasks.jobs.deferral import Deferral
from tasks.producer import prepare
from tasks.states import DeadLetterReason, DeferCause
from tasks.store.deadletters import DeadLetter


def answer(fault: Fault, operation: str = "capture") -> Outcome:
    """What payq makes of the sandbox's faulty answer."""
    return classify(Operation(operation), fault.status, dict(fault.headers), fault.body, now=0.0)


def test_a_hundred_trips_are_captures_a_few_cancels_and_refunds_and_one_unknown_trip() -> None:
    plan = DemoPlan.build(100, "abc123")

    assert len(plan.trips) == 100
    assert len({t.trip_id for t in plan.trips}) == 100
    assert (plan.count("capture"), plan.count("cancel"), plan.count("refund"), plan.count("unknown")) == (94, 5, 6, 1)
    assert plan.store_id == "demo-abc123"
    for trip in plan.trips:
        if trip.refund is not None:
            assert trip.kind == "capture" and trip.amount is not None and Decimal("0.01") <= trip.refund < trip.amount


def test_every_demo_job_passes_the_producers_validation_each_refund_right_after_its_capture() -> None:
    plan = DemoPlan.build(100, "abc123")
    jobs = [prepare(op, fields) for op, fields in plan.first_jobs()]

    assert len({job.job_id for job in jobs}) == len(jobs) == 100 + 6
    for before, refund in itertools.pairwise(jobs):
        if refund.operation == "refund":
            assert (before.operation, before.kwargs["shoppingTripId"]) == ("capture", refund.kwargs["shoppingTripId"])
    assert f"capture:demo-abc123:{UNKNOWN_TRIP}" in {job.job_id for job in jobs}


def test_the_fault_script_gives_a_429_a_503_a_500_and_an_unknown_trip_as_payq_classifies_them() -> None:
    plan = DemoPlan.build(100, "abc123")
    script = parse_script(json.loads(json.dumps(fault_script(plan, retry_after=3, service_unavailable_after=2))))

    unknown = script.select("capture", plan.store_id, UNKNOWN_TRIP).fault
    assert unknown is not None
    refused = answer(unknown)
    assert isinstance(refused, Permanent) and refused.failure.error_type == "UnknownShoppingTrip"

    captures = [script.select("capture", plan.store_id, f"trip-{n:03d}").fault for n in range(1, 20)]
    assert [f.kind if f else None for f in captures[:12]] == ["pass"] * 12
    rate_limited = captures[12]
    assert rate_limited is not None
    assert answer(rate_limited) == RetryAfter(3.0, Failure(FailureKind.THROTTLED, 429, error_msg="Too Many Requests"))
    assert captures[13:] == [None] * 6, "one 429, then the captures go through"

    refunds = [script.select("refund", plan.store_id, "trip-008").fault for _ in range(3)]
    unavailable = RetryAfter(2.0, Failure(FailureKind.UNAVAILABLE, 503, error_msg="ServiceUnavailableException"))
    assert [answer(f, "refund") for f in refunds[:2] if f] == [unavailable] * 2
    assert refunds[2] is None

    reports = [script.select("feedback", plan.store_id, "trip-001").fault for _ in range(9)]
    assert [isinstance(answer(f, "feedback"), Transient) for f in reports[6:8] if f] == [True, True]
    cancel = script.select("cancel", plan.store_id, "trip-010").fault
    assert cancel is not None and isinstance(answer(cancel, "cancel"), Transient)


def _failure(kind: FailureKind, status: int | None = None, **fields: str) -> Failure:
    return Failure(kind, status, **fields)


@pytest.mark.parametrize(
    ("deferral", "cause"),
    [
        (Deferral(DeferCause.PAUSED, 3.5, Operation.CAPTURE, paused_until=3.0),
         "capture endpoint paused after a 429: waited without calling the API"),
        (Deferral(DeferCause.PACED, 9.75, Operation.CAPTURE, turn=10.0, pace=27.0),
         "capture endpoint paced: waited its turn without calling the API"),
        (Deferral(DeferCause.RETRY_AFTER, 3.2, Operation.CAPTURE, 1, 3.0, _failure(FailureKind.THROTTLED, 429, error_msg="Too Many Requests")),
         "HTTP 429 Too Many Requests: retried after the 3s the API asked for"),
        (Deferral(DeferCause.RETRY_AFTER, 2.2, Operation.REFUND, 1, 2.0, _failure(FailureKind.UNAVAILABLE, 503)),
         "HTTP 503 Service Unavailable: retried after the 2s the API asked for"),
        (Deferral(DeferCause.BACKOFF, 1.0, Operation.FEEDBACK, 1, None, _failure(FailureKind.SERVER_ERROR, 500, error_msg="ServiceException")),
         "HTTP 500 Internal Server Error: exponential backoff"),
        (Deferral(DeferCause.BACKOFF, 1.0, Operation.FEEDBACK, 2, None, _failure(FailureKind.SERVER_ERROR, 500, detail="<html><head>")),
         "HTTP 500 Internal Server Error: exponential backoff"),
        (Deferral(DeferCause.BACKOFF, 1.0, Operation.CAPTURE, 3, None, _failure(FailureKind.TIMEOUT, error_type="ReadTimeout")),
         "timeout: exponential backoff"),
        (Deferral(DeferCause.BACKOFF, 1.0, Operation.CAPTURE, 1, None, _failure(FailureKind.CONNECTION, error_type="ConnectionError")),
         "connection failed: exponential backoff"),
    ],
)
def test_retries_are_grouped_into_causes_by_their_fields(deferral: Deferral, cause: str) -> None:
    assert retry_cause(deferral) == cause


def test_the_summary_counts_succeeded_retried_and_dead_lettered_jobs_with_their_reasons() -> None:
    records = {
        "capture:s:t1": {"op": "capture", "state": "succeeded", "attempts": "1"},
        "capture:s:t2": {"op": "capture", "state": "succeeded", "attempts": "2"},
        "feedback:s:t1:1": {"op": "feedback", "state": "succeeded", "attempts": "1"},
        "capture:s:trip-unknown": {"op": "capture", "state": "dead", "attempts": "1"},
    }
    refused = Failure(FailureKind.REFUSED, 400, "UnknownShoppingTrip", "UnknownShoppingTrip: no shopping trip 'trip-unknown'")
    dead = DeadLetter.of(refused, id="capture:s:trip-unknown",
                         operation=Operation.CAPTURE, task="payments.capture", kwargs={}, reason=DeadLetterReason.PERMANENT,
                         attempts=1, dead_at=0.0)
    paused = Deferral(DeferCause.PAUSED, 3.5, Operation.CAPTURE, paused_until=3.0)
    backoff = Deferral(DeferCause.BACKOFF, 1.0, Operation.CAPTURE, 1, None, Failure(FailureKind.SERVER_ERROR, 500, error_msg="ServiceException"))
    summary = Summary(trips=3, elapsed=4.2, snapshot=Snapshot(records), dead_letters=[dead], restarts={"worker": 1},
                      retries=[("capture:s:t1", paused), ("capture:s:t2", backoff)])

    text = summary.render()

    assert "3 trips, 4 jobs, all 4 settled in 4.2s" in text
    assert "succeeded         3   2 captures, 1 payment-status reports" in text
    assert "retried           2   jobs, 2 retries in all:" in text
    assert "1   HTTP 500 Internal Server Error: exponential backoff" in text
    assert "dead-lettered     1   jobs:" in text
    assert "1   permanent (HTTP 400): UnknownShoppingTrip: no shopping trip 'trip-unknown'" in text
    assert "restarts             worker 1" in text
    assert summary.unsettled() == {}
