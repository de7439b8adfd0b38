"""A settled capture is followed by exactly one payment-status report."""

from __future__ import annotations

from decimal import Decimal

from tasks.producer import Producer
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess


def test_capture_settles_and_reports_the_captured_amount_once(producer: Producer, api: SandboxProcess, start_worker) -> None:
    start_worker()
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="trip-1", amount={"amount": "19.99", "code": "USD"})

    def reported() -> dict | None:
        trips = [t for t in api.ledger() if t["shoppingTripId"] == "trip-1" and t["reports"]]
        return trips[0] if trips else None

    trip = wait_for(reported, what="the payment-status report")

    assert job_id == "capture:s1:trip-1"
    assert trip["captured"] == {"amount": "19.99", "code": "USD"}
    assert len(trip["reports"]) == 1
    report = trip["reports"][0]
    assert Decimal(report["totalAmount"]["amount"]) == Decimal(report["settledAmount"]["amount"]) == Decimal("19.99")
    assert report["totalAmount"]["code"] == "USD"
