"""The sandbox's books: what each shopping trip has been charged, cancelled, refunded and reported.

Pure Python with no I/O, so the rules can be tested without a server. The clock
is injected: the 7-day refund window is measured from a trip's ``trip_time``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

REFUND_WINDOW_SECONDS = 7 * 24 * 3600

ErrorKind = Literal["BadRequestException", "UnknownShoppingTrip"]
TripKey = tuple[str, str]


class LedgerError(Exception):
    """The ledger refused an operation; ``kind`` is the API's error type (``x-amzn-ErrorType``)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def _rejected(message: str) -> LedgerError:
    return LedgerError("BadRequestException", message)


def _new_reconciliation_id() -> str:
    return uuid.uuid4().hex  # 32 alphanumeric characters: inside the API's ^[0-9a-zA-Z]*$, <= 64


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in one currency."""

    amount: Decimal
    code: str

    def to_json(self) -> dict[str, str]:
        """The amount as an exact string, never a float."""
        return {"amount": format(self.amount, "f"), "code": self.code}


@dataclass(frozen=True, slots=True)
class Refund:
    """One refund made; ``refund_request_id`` is the caller's idempotency key."""

    refund_request_id: str
    money: Money
    reconciliation_id: str

    def to_json(self) -> dict[str, str]:
        """The refund as ``/admin/ledger`` shows it."""
        return {
            "refundRequestId": self.refund_request_id,
            "amount": format(self.money.amount, "f"),
            "code": self.money.code,
            "reconciliationId": self.reconciliation_id,
        }


@dataclass(slots=True)
class Trip:
    """Everything that has happened to one (storeId, shoppingTripId)."""

    store_id: str
    trip_id: str
    trip_time: float
    captured: Money | None = None
    capture_calls: int = 0  # every valid capture request for the trip, charged or not: retries show up here
    cancelled: bool = False
    refunds: list[Refund] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def refunded(self) -> Decimal:
        """Total refunded so far."""
        return sum((r.money.amount for r in self.refunds), Decimal(0))

    def to_json(self) -> dict[str, Any]:
        """The trip as ``/admin/ledger`` shows it: amounts as exact strings."""
        return {
            "storeId": self.store_id,
            "shoppingTripId": self.trip_id,
            "tripTime": self.trip_time,
            "captured": self.captured.to_json() if self.captured else None,
            "captureCalls": self.capture_calls,
            "cancelled": self.cancelled,
            "refunds": [r.to_json() for r in self.refunds],
            "reports": list(self.reports),
        }


@dataclass(frozen=True, slots=True)
class FeedbackVerdict:
    """What fraud and abuse said to a payment-status report."""

    status: Literal["Accepted", "Rejected"]
    reason_code: str


class Ledger:
    """Trips by (storeId, shoppingTripId) and the API's rules for what may happen to them."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        auto_register: bool = False,
        new_reconciliation_id: Callable[[], str] = _new_reconciliation_id,
    ) -> None:
        self._clock = clock
        self.auto_register = auto_register
        self._new_reconciliation_id = new_reconciliation_id
        self._trips: dict[TripKey, Trip] = {}
        # refundRequestId is unique across all refunds, not per trip
        self._refunds: dict[str, tuple[TripKey, Refund]] = {}

    def register(self, store_id: str, trip_id: str, trip_time: float | None = None) -> Trip:
        """Make a trip known; registering it again only moves its trip time (when one is given)."""
        trip = self._trips.get((store_id, trip_id))
        if trip is None:
            trip = Trip(store_id, trip_id, self._clock() if trip_time is None else trip_time)
            self._trips[(store_id, trip_id)] = trip
        elif trip_time is not None:
            trip.trip_time = trip_time
        return trip

    def trip(self, store_id: str, trip_id: str) -> Trip:
        """The trip, registering it on first sight under ``auto_register``; else :class:`LedgerError`."""
        trip = self._trips.get((store_id, trip_id))
        if trip is not None:
            return trip
        if self.auto_register:
            return self.register(store_id, trip_id)
        raise LedgerError("UnknownShoppingTrip", f"no shopping trip {trip_id!r} in store {store_id!r}")

    def trips(self) -> list[Trip]:
        """Every trip, in the order first seen."""
        return list(self._trips.values())

    def clear(self) -> None:
        """Forget every trip and refund."""
        self._trips.clear()
        self._refunds.clear()

    def capture(self, store_id: str, trip_id: str, money: Money) -> None:
        """Charge a trip once; the same amount again is acknowledged without a second charge."""
        trip = self.trip(store_id, trip_id)
        trip.capture_calls += 1  # every call is counted, so a test can see a retry that did not charge twice
        if trip.cancelled:
            raise _rejected("the trip was cancelled; a cancelled charge cannot be captured")
        if trip.captured is not None:
            if trip.captured != money:
                raise _rejected(
                    f"already captured with a different amount ({format(trip.captured.amount, 'f')} {trip.captured.code})"
                )
            return
        trip.captured = money

    def cancel(self, store_id: str, trip_id: str) -> None:
        """Cancel a trip's charge; cancelling twice is fine, cancelling a capture is not."""
        trip = self.trip(store_id, trip_id)
        if trip.captured is not None:
            raise _rejected("a completed charge is refunded, not cancelled")
        trip.cancelled = True

    def refund(self, store_id: str, trip_id: str, refund_request_id: str, money: Money) -> str:
        """Refund part of a capture and return its reconciliation id; a repeated ``refund_request_id`` refunds nothing."""
        trip = self.trip(store_id, trip_id)
        key = (store_id, trip_id)
        seen = self._refunds.get(refund_request_id)
        if seen is not None:
            # Checked before the window and the balance: a retry must get the answer the first call got.
            seen_key, refund = seen
            if seen_key != key:
                raise _rejected("refundRequestId: already used for another shopping trip")
            if refund.money != money:
                raise _rejected("refundRequestId: already used with a different amount")
            return refund.reconciliation_id
        if trip.captured is None:
            raise _rejected("the trip has no captured charge to refund")
        if money.code != trip.captured.code:
            raise _rejected(f"amount.code: must be the captured currency {trip.captured.code}")
        if self._clock() - trip.trip_time > REFUND_WINDOW_SECONDS:
            raise _rejected("refund window of 7 days has passed")
        if trip.refunded + money.amount > trip.captured.amount:
            left = trip.captured.amount - trip.refunded
            raise _rejected(f"amount.amount: refunds would exceed the captured amount ({format(left, 'f')} left to refund)")
        refund = Refund(refund_request_id, money, self._new_reconciliation_id())
        trip.refunds.append(refund)
        self._refunds[refund_request_id] = (key, refund)
        return refund.reconciliation_id

    def report(self, store_id: str, trip_id: str, total: Decimal, settled: Decimal, body: dict[str, Any]) -> FeedbackVerdict:
        """Record a payment-status report; one that settles more than the total is rejected (and still recorded)."""
        trip = self.trip(store_id, trip_id)
        trip.reports.append(body)
        if settled > total:
            return FeedbackVerdict("Rejected", "SettledExceedsTotal")
        return FeedbackVerdict("Accepted", "OK")
