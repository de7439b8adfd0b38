"""What ``payq demo`` enqueues, and the faults the sandbox answers it with.

Pure: no I/O, so the plan and the fault script can be read, and tested, on
their own. Every run uses its own storeId, so running the demo twice against
the same Redis enqueues new jobs instead of meeting the first run's
idempotency keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from payapi.models import REFUND_REASON_CODES

UNKNOWN_TRIP = "trip-unknown"
CURRENCY = "USD"
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Trip:
    """One shopping trip of the demo and what happens to it.

    ``capture`` trips are charged (and their payment-status report follows by
    itself); those with a ``refund`` are then partly refunded once the capture
    has succeeded, as a shopper returning an item would be. ``cancel`` trips
    were empty carts. The ``unknown`` trip is one the API has never heard of.
    """

    trip_id: str
    kind: Literal["capture", "cancel", "unknown"]
    amount: Decimal | None = None
    refund: Decimal | None = None
    refund_reason: str | None = None


@dataclass(frozen=True)
class DemoPlan:
    """The trips of one demo run, all in the store ``store_id``."""

    store_id: str
    trips: tuple[Trip, ...]

    @classmethod
    def build(cls, count: int, run_id: str) -> DemoPlan:
        """``count`` trips: about one in twenty a cancel, one in fifteen refunded, and one unknown trip."""
        if count < 3:
            raise ValueError("the demo needs at least 3 trips (a capture, a cancel and the unknown trip)")
        cancels = max(1, count // 20)
        refunds = max(1, count // 15)
        trips: list[Trip] = []
        captured = 0
        for number in range(1, count):
            trip_id = f"trip-{number:03d}"
            if number % 20 == 10 and cancels:
                trips.append(Trip(trip_id, "cancel"))
                cancels -= 1
                continue
            # cart totals from 1.00 to 90.99, varied but the same on every run
            amount = (Decimal(number * 731 % 9000 + 100) / 100).quantize(_CENT)
            refund = None
            reason = None
            if captured % 15 == 7 and refunds:
                refund = max(_CENT, (amount / 3).quantize(_CENT))
                reason = REFUND_REASON_CODES[refunds % len(REFUND_REASON_CODES)]
                refunds -= 1
            trips.append(Trip(trip_id, "capture", amount, refund, reason))
            captured += 1
        # in the middle of the run, not first or last, as it would be in real traffic
        trips.insert(len(trips) // 2, Trip(UNKNOWN_TRIP, "unknown", Decimal("12.34")))
        return cls(f"demo-{run_id}", tuple(trips))

    def count(self, kind: str) -> int:
        """How many trips are of ``kind`` (``refund`` counts the captures that will be refunded)."""
        if kind == "refund":
            return sum(1 for t in self.trips if t.refund is not None)
        return sum(1 for t in self.trips if t.kind == kind)

    def first_jobs(self) -> list[tuple[str, dict[str, Any]]]:
        """(operation, wire fields) of what is enqueued at once: every capture and cancel, and each refund right after its capture.

        A refund waits (state ``waiting``) until its trip's capture has succeeded, and is sent then.
        """
        jobs: list[tuple[str, dict[str, Any]]] = []
        for trip in self.trips:
            base = {"storeId": self.store_id, "shoppingTripId": trip.trip_id}
            if trip.kind == "cancel":
                jobs.append(("cancel", base))
                continue
            jobs.append(("capture", {**base, "amount": {"amount": str(trip.amount), "code": CURRENCY}}))
            if trip.refund is not None:
                jobs.append(("refund", self.refund_fields(trip)))
        return jobs

    def refund_fields(self, trip: Trip) -> dict[str, Any]:
        """The refund of ``trip``, without ``refundRequestId``: the producer makes that, once."""
        assert trip.refund is not None and trip.refund_reason is not None
        return {
            "storeId": self.store_id, "shoppingTripId": trip.trip_id,
            "amount": {"amount": str(trip.refund), "code": CURRENCY}, "refundReasonCode": trip.refund_reason,
        }


def fault_script(plan: DemoPlan, *, retry_after: int = 3, service_unavailable_after: int = 2) -> dict[str, Any]:
    """The sandbox's fault script for the demo (``payq sandbox --faults``): 429, 503, 500 and an unknown trip.

    Delays are a few seconds so the demo finishes quickly; the real API asks
    for up to 600. Sequences, not probabilities, so every run shows each fault.
    """
    unknown = {
        "status": 400,
        "headers": {"x-amzn-ErrorType": "UnknownShoppingTrip"},
        "body": {"errorMsg": f"UnknownShoppingTrip: no shopping trip '{UNKNOWN_TRIP}' in store '{plan.store_id}'"},
    }
    return {"rules": [
        # the sandbox auto-registers every trip it sees; this one it must not know
        {"endpoint": "*", "storeId": plan.store_id, "shoppingTripId": UNKNOWN_TRIP, "fault": unknown},
        # a rate limit part-way through the captures: every worker pauses the capture endpoint
        {"endpoint": "capture", "sequence": ["pass"] * 12 + [f"429 Retry-After: {retry_after}"]},
        # the refund service is briefly unavailable and says when to come back (in the body)
        {"endpoint": "refund", "sequence": [f"503 retryAfter {service_unavailable_after}"] * 2},
        # server errors without a delay: exponential backoff with jitter
        {"endpoint": "feedback", "sequence": ["pass"] * 6 + ["500", "500 html"]},
        {"endpoint": "cancel", "sequence": ["500"]},
    ]}
