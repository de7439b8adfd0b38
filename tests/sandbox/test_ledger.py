"""The sandbox's ledger rules over real HTTP, plus the refund window on an injected clock."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from payapi import wire
from sandbox.ledger import REFUND_WINDOW_SECONDS, Ledger, LedgerError, Money
from tests.support.sandbox import SandboxProcess

STORE, TRIP = "store-1", "trip-1"
CAPTURE, CANCEL, REFUND, FEEDBACK = "/v1/capture/charge", "/v1/cancel/charge", "/v1/refund", "/v1/feedback/payment-status"
DAY = 24 * 3600
REFUND_IDS = [
    "3f1c2a4e-9b7d-4c1e-8a2b-5d6e7f809a1b",
    "0b5e4d3c-2a19-4f8e-9d7c-6b5a4f3e2d1c",
    "9a8b7c6d-5e4f-4a3b-b2c1-d0e9f8a7b6c5",
]


def call(sandbox: SandboxProcess, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(sandbox.url + path, data=wire.dumps(body), headers={"Content-Type": "application/json"}, timeout=5)


def capture(sandbox: SandboxProcess, amount: str = "19.99", code: str = "USD", trip: str = TRIP) -> requests.Response:
    return call(sandbox, CAPTURE, {"storeId": STORE, "shoppingTripId": trip, "amount": {"amount": Decimal(amount), "code": code}})


def cancel(sandbox: SandboxProcess, trip: str = TRIP) -> requests.Response:
    return call(sandbox, CANCEL, {"storeId": STORE, "shoppingTripId": trip})


def refund(sandbox: SandboxProcess, amount: str, refund_id: str = REFUND_IDS[0], code: str = "USD") -> requests.Response:
    return call(sandbox, REFUND, {
        "storeId": STORE, "shoppingTripId": TRIP, "amount": {"amount": Decimal(amount), "code": code},
        "refundRequestId": refund_id, "refundReasonCode": "UNWANTED_ITEM",
    })


def feedback(sandbox: SandboxProcess, total: str, settled: str) -> requests.Response:
    return call(sandbox, FEEDBACK, {
        "storeId": STORE, "shoppingTripId": TRIP,
        "totalAmount": {"amount": Decimal(total), "code": "USD"},
        "settledAmount": {"amount": Decimal(settled), "code": "USD"},
        "paymentStatusTime": 1700000000,
    })


def refused(response: requests.Response, words: str, kind: str = "BadRequestException") -> None:
    assert response.status_code == 400, response.text
    assert response.headers["x-amzn-ErrorType"] == kind
    message = response.json()["errorMsg"]
    assert message.startswith(f"{kind}: ") and words in message, message


@pytest.fixture
def trip(sandbox: SandboxProcess) -> SandboxProcess:
    """The sandbox with STORE/TRIP registered now."""
    sandbox.register_trip(STORE, TRIP)
    return sandbox


# --- capture and cancel -----------------------------------------------------------------------

def test_capture_answers_an_empty_200_and_records_the_exact_amount(trip: SandboxProcess) -> None:
    response = capture(trip, "19.99")
    assert (response.status_code, response.content) == (200, b"")
    entry = trip.trip(STORE, TRIP)
    assert (entry["captured"], entry["captureCalls"], entry["cancelled"]) == ({"amount": "19.99", "code": "USD"}, 1, False)


def test_a_repeated_capture_is_acknowledged_but_charges_once(trip: SandboxProcess) -> None:
    assert [capture(trip).status_code for _ in range(3)] == [200, 200, 200]
    entry = trip.trip(STORE, TRIP)
    assert (entry["captured"]["amount"], entry["captureCalls"]) == ("19.99", 3)


def test_a_capture_with_another_amount_or_currency_is_refused(trip: SandboxProcess) -> None:
    capture(trip, "19.99")
    refused(capture(trip, "20.00"), "already captured with a different amount")
    refused(capture(trip, "19.99", "EUR"), "already captured with a different amount")
    assert trip.trip(STORE, TRIP)["captured"] == {"amount": "19.99", "code": "USD"}


def test_trailing_zeros_are_the_same_amount(trip: SandboxProcess) -> None:
    capture(trip, "20")
    assert capture(trip, "20.00").status_code == 200


def test_capture_after_cancel_is_refused(trip: SandboxProcess) -> None:
    assert cancel(trip).status_code == 200
    refused(capture(trip), "cancelled")
    assert trip.trip(STORE, TRIP)["captured"] is None


def test_cancel_after_capture_is_refused_because_a_completed_charge_is_refunded(trip: SandboxProcess) -> None:
    capture(trip)
    refused(cancel(trip), "a completed charge is refunded, not cancelled")
    assert trip.trip(STORE, TRIP)["cancelled"] is False


def test_cancel_twice_is_fine(trip: SandboxProcess) -> None:
    first, second = cancel(trip), cancel(trip)
    assert (first.status_code, first.content, second.status_code) == (200, b"", 200)
    assert trip.trip(STORE, TRIP)["cancelled"] is True


# --- refund -----------------------------------------------------------------------------------

def test_a_refund_answers_a_reconciliation_id(trip: SandboxProcess) -> None:
    capture(trip, "19.99")
    response = refund(trip, "5.00")
    assert response.status_code == 200
    reconciliation_id = response.json()["reconciliationId"]
    assert re.fullmatch(r"[0-9a-zA-Z]{1,64}", reconciliation_id)
    assert trip.trip(STORE, TRIP)["refunds"] == [
        {"refundRequestId": REFUND_IDS[0], "amount": "5.00", "code": "USD", "reconciliationId": reconciliation_id},
    ]


def test_the_same_refund_request_id_refunds_once_and_answers_the_same_id(trip: SandboxProcess) -> None:
    capture(trip, "19.99")
    first, again = refund(trip, "5.00"), refund(trip, "5.00")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert len(trip.trip(STORE, TRIP)["refunds"]) == 1
    refused(refund(trip, "6.00"), "refundRequestId: already used with a different amount")


def test_refunds_may_add_up_to_the_capture_but_not_beyond(trip: SandboxProcess) -> None:
    capture(trip, "10.00")
    assert refund(trip, "3.33", REFUND_IDS[0]).status_code == 200
    assert refund(trip, "6.67", REFUND_IDS[1]).status_code == 200
    refused(refund(trip, "0.01", REFUND_IDS[2]), "refunds would exceed the captured amount")
    assert [r["amount"] for r in trip.trip(STORE, TRIP)["refunds"]] == ["3.33", "6.67"]


def test_a_single_refund_above_the_capture_is_refused(trip: SandboxProcess) -> None:
    capture(trip, "10.00")
    refused(refund(trip, "10.01"), "refunds would exceed the captured amount")


def test_a_refund_needs_a_capture(trip: SandboxProcess) -> None:
    refused(refund(trip, "1.00"), "no captured charge")
    cancel(trip)
    refused(refund(trip, "1.00"), "no captured charge")


def test_a_refund_in_another_currency_is_refused(trip: SandboxProcess) -> None:
    capture(trip, "10.00", "USD")
    refused(refund(trip, "1.00", code="EUR"), "amount.code")


def test_no_refund_after_7_days_from_the_trip(sandbox: SandboxProcess) -> None:
    sandbox.register_trip(STORE, TRIP, trip_time=time.time() - 8 * DAY)
    capture(sandbox, "10.00")
    refused(refund(sandbox, "1.00"), "refund window of 7 days has passed")
    assert sandbox.trip(STORE, TRIP)["refunds"] == []


def test_a_refund_on_day_6_is_inside_the_window(sandbox: SandboxProcess) -> None:
    sandbox.register_trip(STORE, TRIP, trip_time=time.time() - 6 * DAY)
    capture(sandbox, "10.00")
    assert refund(sandbox, "1.00").status_code == 200


def test_the_window_boundary_on_an_injected_clock() -> None:
    now = [1_000_000.0]
    ledger = Ledger(clock=lambda: now[0], new_reconciliation_id=lambda: "R1")
    ledger.register(STORE, TRIP)
    ledger.capture(STORE, TRIP, Money(Decimal("10"), "USD"))
    now[0] += REFUND_WINDOW_SECONDS
    assert ledger.refund(STORE, TRIP, REFUND_IDS[0], Money(Decimal("1"), "USD")) == "R1"  # exactly 7 days: still in
    now[0] += 1
    with pytest.raises(LedgerError, match="refund window of 7 days has passed"):
        ledger.refund(STORE, TRIP, REFUND_IDS[1], Money(Decimal("1"), "USD"))
    # a retry of the refund made in time still gets its answer
    assert ledger.refund(STORE, TRIP, REFUND_IDS[0], Money(Decimal("1"), "USD")) == "R1"


# --- unknown trips ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", [CAPTURE, CANCEL, REFUND, FEEDBACK])
def test_an_unregistered_trip_is_unknown_on_every_endpoint(sandbox: SandboxProcess, path: str) -> None:
    sandbox.register_trip(STORE, "another-trip")
    bodies = {
        CAPTURE: lambda: capture(sandbox),
        CANCEL: lambda: cancel(sandbox),
        REFUND: lambda: refund(sandbox, "1.00"),
        FEEDBACK: lambda: feedback(sandbox, "1.00", "1.00"),
    }
    refused(bodies[path](), TRIP, kind="UnknownShoppingTrip")


def test_the_same_trip_id_in_another_store_is_another_trip(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-2", TRIP)
    refused(capture(sandbox), "", kind="UnknownShoppingTrip")


# --- feedback ---------------------------------------------------------------------------------

def test_feedback_is_accepted_and_recorded_with_exact_amounts(trip: SandboxProcess) -> None:
    response = feedback(trip, "19.99", "19.99")
    assert (response.status_code, response.json()) == (200, {"status": "Accepted", "reasonCode": "OK"})
    assert trip.trip(STORE, TRIP)["reports"] == [{
        "storeId": STORE, "shoppingTripId": TRIP,
        "totalAmount": {"amount": "19.99", "code": "USD"},
        "settledAmount": {"amount": "19.99", "code": "USD"},
        "paymentStatusTime": 1700000000,
    }]


def test_feedback_settling_more_than_the_total_is_rejected(trip: SandboxProcess) -> None:
    response = feedback(trip, "10.00", "10.01")
    assert (response.status_code, response.json()) == (200, {"status": "Rejected", "reasonCode": "SettledExceedsTotal"})
    assert len(trip.trip(STORE, TRIP)["reports"]) == 1


def test_a_partly_settled_trip_is_accepted(trip: SandboxProcess) -> None:
    assert feedback(trip, "10.00", "4.00").json()["status"] == "Accepted"


# --- admin ------------------------------------------------------------------------------------

def test_trips_register_in_bulk_and_bad_ones_are_refused(sandbox: SandboxProcess) -> None:
    items = [{"storeId": STORE, "shoppingTripId": f"t{i}", "tripTime": 1_700_000_000 + i} for i in range(3)]
    response = requests.post(sandbox.url + "/admin/trips", data=wire.dumps(items), timeout=5)
    assert response.json() == {"registered": 3}
    assert [t["tripTime"] for t in sandbox.ledger()] == [1_700_000_000, 1_700_000_001, 1_700_000_002]
    bad = requests.post(sandbox.url + "/admin/trips", data='{"storeId": "a b", "shoppingTripId": "t"}', timeout=5)
    assert bad.status_code == 400 and "storeId" in bad.json()["errorMsg"]


def test_the_request_log_keeps_exact_bytes_and_answers_but_no_admin_calls(trip: SandboxProcess) -> None:
    before = time.time()
    capture(trip, "19.99")
    cancel(trip)
    log = trip.requests()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [("POST", CAPTURE, 200), ("POST", CANCEL, 400)]
    assert '"amount":19.99,' in log[0]["body"]
    assert log[0]["headers"]["Content-Type"] == "application/json"
    assert before <= log[0]["time"] <= log[1]["time"]
    assert [r["path"] for r in trip.requests(CANCEL)] == [CANCEL]
    assert trip.requests(since=log[1]["time"]) == [log[1]]
    assert trip.requests(since=time.time() + 60) == []


def test_reset_forgets_trips_and_requests(trip: SandboxProcess) -> None:
    capture(trip)
    trip.reset()
    assert (trip.ledger(), trip.requests()) == ([], [])


def test_auto_register_accepts_any_trip_and_the_log_limit_holds() -> None:
    with SandboxProcess("--auto-register", "--log-limit", "2") as sandbox:
        before = time.time()
        assert capture(sandbox, trip="never-registered").status_code == 200
        assert cancel(sandbox, trip="also-new").status_code == 200
        assert cancel(sandbox, trip="third").status_code == 200
        trips = {t["shoppingTripId"]: t for t in sandbox.ledger()}
        assert set(trips) == {"never-registered", "also-new", "third"}
        assert trips["never-registered"]["tripTime"] >= before
        assert [r["body"] for r in sandbox.requests()] == [
            wire.dumps({"storeId": STORE, "shoppingTripId": t}) for t in ("also-new", "third")
        ]
