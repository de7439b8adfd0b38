"""The demo's plan, its fault script, and how its summary reads: pure, no processes."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from payapi.outcomes import Permanent, RetryAfter, RetryAfterBounds, Transient, classify
from sandbox.faults import Fault, parse_script
from tasks.producer import prepare
from workers.deadletters import DeadLetter
from workers.demo_plan import UNKNOWN_TRIP, DemoPlan, fault_script
from workers.demo_report import Snapshot, Summary, reason_from_event, retry_cause

BOUNDS = RetryAfterBounds(floor=1.0, cap=900.0)


def answer(fault: Fault, operation: str = "capture"):  # type: ignore[no-untyped-def]
    """What payq makes of the sandbox's faulty answer."""
    return classify(operation, fault.status, dict(fault.headers), fault.body, now=0.0, bounds=BOUNDS)  # type: ignore[arg-type]


def test_a_hundred_trips_are_captures_a_few_cancels_and_refunds_and_one_unknown_trip() -> None:
    plan = DemoPlan.build(100, "abc123")

    assert len(plan.trips) == 100
    assert len({t.trip_id for t in plan.trips}) == 100
    assert (plan.count("capture"), plan.count("cancel"), plan.count("refund"), plan.count("unknown")) == (94, 5, 6, 1)
    assert plan.store_id == "demo-abc123"
    for trip in plan.trips:
        if trip.refund is not None:
            assert trip.kind == "capture" and trip.amount is not None and Decimal("0.01") <= trip.refund < trip.amount


def test_every_demo_job_passes_the_producers_validation() -> None:
    plan = DemoPlan.build(100, "abc123")
    jobs = [prepare(op, fields) for op, fields in plan.first_jobs()]
    jobs += [prepare("refund", plan.refund_fields(t)) for t in plan.trips if t.refund is not None]

    assert len({job.job_id for job in jobs}) == len(jobs) == 100 + 6
    assert f"capture:demo-abc123:{UNKNOWN_TRIP}" in {job.job_id for job in jobs}


def test_the_fault_script_gives_a_429_a_503_a_500_and_an_unknown_trip_as_payq_classifies_them() -> None:
    plan = DemoPlan.build(100, "abc123")
    script = parse_script(json.loads(json.dumps(fault_script(plan, retry_after=3, service_unavailable_after=2))))

    unknown = script.select("capture", plan.store_id, UNKNOWN_TRIP).fault
    assert unknown is not None
    assert isinstance(answer(unknown), Permanent) and answer(unknown).reason == "UnknownShoppingTrip"  # type: ignore[union-attr]

    captures = [script.select("capture", plan.store_id, f"trip-{n:03d}").fault for n in range(1, 20)]
    assert [f.kind if f else None for f in captures[:12]] == ["pass"] * 12
    rate_limited = captures[12]
    assert rate_limited is not None and answer(rate_limited) == RetryAfter(3.0, "HTTP 429 Too Many Requests: Too Many Requests", 429)
    assert captures[13:] == [None] * 6, "one 429, then the captures go through"

    refunds = [script.select("refund", plan.store_id, "trip-008").fault for _ in range(3)]
    assert [answer(f, "refund") for f in refunds[:2] if f] == [RetryAfter(2.0, "HTTP 503 Service Unavailable: ServiceUnavailableException", 503)] * 2
    assert refunds[2] is None

    reports = [script.select("feedback", plan.store_id, "trip-001").fault for _ in range(9)]
    assert [isinstance(answer(f, "feedback"), Transient) for f in reports[6:8] if f] == [True, True]
    cancel = script.select("cancel", plan.store_id, "trip-010").fault
    assert cancel is not None and isinstance(answer(cancel, "cancel"), Transient)


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("capture endpoint paused until 2026-01-01T00:00:03Z after HTTP 429", "capture endpoint paused after a 429: waited without calling the API"),
        ("HTTP 429 Too Many Requests: Too Many Requests; retry after 3s", "HTTP 429 Too Many Requests: retried after the 3s the API asked for"),
        ("HTTP 503 Service Unavailable: ServiceUnavailableException; retry after 2s",
         "HTTP 503 Service Unavailable: retried after the 2s the API asked for"),
        ("HTTP 500 Internal Server Error: ServiceException; backoff after attempt 1", "HTTP 500 Internal Server Error: exponential backoff"),
        ("HTTP 500 Internal Server Error: <html><head><title>500; backoff after attempt 2", "HTTP 500 Internal Server Error: exponential backoff"),
        ("timeout: ReadTimeout; backoff after attempt 3", "timeout: exponential backoff"),
        ("connection failed: ConnectionError: reset by peer; backoff after attempt 1", "connection failed: exponential backoff"),
    ],
)
def test_retry_reasons_are_grouped_into_causes(reason: str, cause: str) -> None:
    assert retry_cause(reason) == cause


def test_the_reason_is_read_out_of_celerys_retry_event() -> None:
    exception = "Retry(Retry(...), Deferred('HTTP 429 Too Many Requests: Too Many Requests; retry after 3s; runs again at 1795272383.123'), 1795272383.123)"
    assert reason_from_event(exception) == "HTTP 429 Too Many Requests: Too Many Requests; retry after 3s"


def test_the_summary_counts_succeeded_retried_and_dead_lettered_jobs_with_their_reasons() -> None:
    records = {
        "capture:s:t1": {"op": "capture", "state": "succeeded", "attempts": "1"},
        "capture:s:t2": {"op": "capture", "state": "succeeded", "attempts": "2"},
        "feedback:s:t1:1": {"op": "feedback", "state": "succeeded", "attempts": "1"},
        "capture:s:trip-unknown": {"op": "capture", "state": "dead", "attempts": "1"},
    }
    dead = DeadLetter(id="capture:s:trip-unknown", operation="capture", task="payments.capture", kwargs={}, reason="permanent",
                      status=400, error="UnknownShoppingTrip", attempts=1, dead_at=0.0)
    summary = Summary(trips=3, elapsed=4.2, snapshot=Snapshot(records), dead_letters=[dead], restarts={"worker": 1},
                      retries=[("capture:s:t1", "capture endpoint paused until 2026-01-01T00:00:03Z after HTTP 429"),
                               ("capture:s:t2", "HTTP 500 Internal Server Error: ServiceException; backoff after attempt 1")])

    text = summary.render()

    assert "3 trips, 4 jobs, all 4 settled in 4.2s" in text
    assert "succeeded         3   2 captures, 1 payment-status reports" in text
    assert "retried           2   jobs, 2 retries in all:" in text
    assert "1   HTTP 500 Internal Server Error: exponential backoff" in text
    assert "dead-lettered     1   jobs:" in text
    assert "1   permanent (HTTP 400): UnknownShoppingTrip" in text
    assert "restarts             worker 1" in text
    assert summary.unsettled() == {}
