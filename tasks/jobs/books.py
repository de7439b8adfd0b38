"""A trip's books: what payq knows of a shopping trip's capture, cancel and refunds, and the rules they keep.

The books live in Redis beside the job records (``payq:trip:<storeId>:<shoppingTripId>``)
and are written by the same scripts that write the jobs, so a rule is checked
and the job recorded in one atomic step (``tasks/store/lua/enqueue.lua``). The rules:

- a refund waits (``waiting``) until its trip's capture has succeeded, and is
  released in the step that records that success;
- refunds may not add up past the captured amount (dead-lettered refunds do
  not count), nor be in another currency, nor come more than 7 days after the
  capture succeeded;
- a trip is captured or cancelled, never both.

Amounts are kept in cents (integers): Lua has no decimals, and every amount
payq accepts has at most two decimal places, so cents are exact. Once the
capture has succeeded the books name it :data:`OWN_CAPTURE` (its id is the
trip's own); :func:`read_books` gives its id back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from payapi.errors import FieldProblem, InvalidRequest
from payapi.operations import OPERATIONS, Operation
from tasks.states import TripRule

REFUND_WINDOW_SECONDS = 7 * 24 * 3600
# how long a trip's books are kept unless configured (PAYQ_TRIP_BOOKS_RETENTION_DAYS): the refund window and a day
BOOKS_RETENTION_SECONDS = 8 * 24 * 3600
# What the books keep under ``capture`` once it succeeded (``lua/finish_capture.lua``; ``lua/lib/books.lua`` says the same):
# a trip's capture id is always its own (``capture:<storeId>:<shoppingTripId>``), ~55 bytes of the books kept 8 days
OWN_CAPTURE = "="


def capture_of(store_id: str, trip_id: str) -> str:
    """The id of the trip's capture: its operation's job-id rule."""
    return OPERATIONS[Operation.CAPTURE].job_id({"storeId": store_id, "shoppingTripId": trip_id})


def read_books(store_id: str, trip_id: str, stored: dict[str, str]) -> dict[str, str]:
    """A trip's books as stored, as every reader knows them: the capture's id in full (books written before kept it so)."""
    if stored.get("capture") == OWN_CAPTURE:
        return {**stored, "capture": capture_of(store_id, trip_id)}
    return dict(stored)



@dataclass(frozen=True)
class Breach:
    """One job that broke a rule, as the enqueue script reports it: which job, which rule, and the facts."""

    index: int
    rule: TripRule
    store_id: str
    trip_id: str
    other_job: str | None = None      # the capture or cancel that excludes this job
    captured_cents: int | None = None
    refunded_cents: int | None = None
    currency: str | None = None       # the capture's
    captured_at: float | None = None

    def problem(self) -> FieldProblem:
        """The field and the rule, as a person reads them."""
        trip = f"trip {self.store_id}/{self.trip_id}"
        if self.rule is TripRule.CAPTURE_AFTER_CANCEL:
            return FieldProblem("shoppingTripId", f"{trip} has a cancel job ({self.other_job}): a cancelled trip cannot be captured")
        if self.rule is TripRule.CANCEL_AFTER_CAPTURE:
            return FieldProblem("shoppingTripId", f"{trip} has a capture job ({self.other_job}): a captured trip is refunded, not cancelled")
        if self.rule is TripRule.REFUND_CURRENCY:
            return FieldProblem("amount.code", f"must be the currency {trip} was captured in, {self.currency}")
        if self.rule is TripRule.REFUND_WINDOW:
            return FieldProblem("amount", f"{trip} was captured more than 7 days ago: the refund window has passed")
        captured, refunded = money(self.captured_cents or 0), money(self.refunded_cents or 0)
        left = money((self.captured_cents or 0) - (self.refunded_cents or 0))
        return FieldProblem("amount.amount", f"refunds would exceed the captured amount of {trip}: captured {captured} {self.currency}, "
                                             f"already refunded {refunded}, refundable {left}")


class TripRuleViolation(InvalidRequest):
    """Jobs that break a trip's rules; nothing was enqueued. ``breaches`` say which job (by index) broke which rule."""

    def __init__(self, breaches: list[Breach]) -> None:
        problems = [b.problem() for b in breaches]
        super().__init__(problems)
        self.breaches = breaches

    @property
    def rules(self) -> list[TripRule]:
        """The rules broken, in the order of the jobs."""
        return [b.rule for b in self.breaches]


def cents(amount: Any) -> int:
    """An amount (a Decimal, or its exact string) in cents."""
    return int(Decimal(str(amount)) * 100)


def money(cents_value: int) -> str:
    """Cents as an amount with two decimal places, e.g. ``1234`` -> ``12.34``."""
    return format(Decimal(cents_value) / 100, ".2f")


def breach_from(reply: list[Any], store_id: str, trip_id: str) -> Breach:
    """A :class:`Breach` from one problem the enqueue script returned: ``{index, rule, other job, captured, refunded, currency, captured_at}``."""
    index, rule, other, captured, refunded, currency, captured_at = reply

    def number(value: Any) -> int | None:
        return int(value) if value not in (None, "", False) else None

    if other == OWN_CAPTURE:
        other = capture_of(store_id, trip_id)
    return Breach(int(index), TripRule(rule), store_id, trip_id, other or None, number(captured), number(refunded), currency or None,
                  float(captured_at) if captured_at not in (None, "", False) else None)
