"""What an event does after one delivery: pure functions of the receiver's answer, tested as tables.

:func:`payapi.outcomes.classify_receiver` says what an answer *is*;
:func:`next_step` says what the outbox *does*: forget the event (delivered),
keep it for a later delivery, or dead-letter it as ``notify-failed``. Failed
deliveries follow Svix's published schedule, so a receiver that is down for an
afternoon still gets every event: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
(about 27 hours in all with the default 8 attempts). A 429 or 503 with
Retry-After is a request for time, not a failure: it uses no attempt and does
not advance the schedule; the event comes back when the receiver asked, and
every worker's deliveries to the receiver pause until then. What bounds those
is the schedule's span (:func:`schedule_span`), counted from the event's outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from payapi.outcomes import Failure, Outcome, RetryAfter, Success

# seconds to wait after the 1st, 2nd, ... failed delivery (the last repeats for any later one)
SCHEDULE: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
SPREAD = 0.1  # up to this share of the wait is added at random, so events that failed together do not come back together


@dataclass(frozen=True)
class Delivered:
    """The receiver took the event (a 2xx): forget it."""


@dataclass(frozen=True)
class TryLater:
    """Deliver the event again at ``until``, with ``failed`` failed deliveries on its record.

    ``failure``: what this delivery came to (None: none was made, the receiver
    had asked for quiet); ``pause_until``: first pause every delivery to the
    receiver until then (its Retry-After).
    """

    until: float
    failed: int
    failure: Failure | None = None
    pause_until: float | None = None


@dataclass(frozen=True)
class GiveUp:
    """Dead-letter the event as ``notify-failed`` with ``failure`` (a Retry-After still pauses the receiver until ``pause_until``)."""

    failure: Failure
    pause_until: float | None = None


Step = Delivered | TryLater | GiveUp


def retry_delay(failed: int) -> float:
    """Seconds to wait after the ``failed``-th failed delivery (1-based), by :data:`SCHEDULE`."""
    return SCHEDULE[min(max(failed, 1), len(SCHEDULE)) - 1]


def schedule_span(max_attempts: int) -> float:
    """Seconds the schedule spans for ``max_attempts`` deliveries: the waits between them (99,305 s, 27.6 h, for 8)."""
    return sum(retry_delay(failed) for failed in range(1, max_attempts))


def next_step(outcome: Outcome, failed: int, max_attempts: int, since: float, now: float, floor: float, cap: float,
              rand: Callable[[], float]) -> Step:
    """What to do after a delivery of an event with ``failed`` failed deliveries on record, appended at ``since``, came back as ``outcome``.

    - Success (2xx): delivered.
    - RetryAfter (429 or 503 with the header): the receiver is paused until
      the delay (clamped to [``floor``, ``cap``]) is over, and the event comes
      back then, its failed count unchanged; a pause that would end past the
      schedule's span from ``since`` gives up instead.
    - Anything else (another 4xx or 5xx, no answer): one more failed delivery:
      again after the schedule's wait for it, or, if that was the
      ``max_attempts``-th, give up.
    """
    if isinstance(outcome, Success):
        return Delivered()
    if isinstance(outcome, RetryAfter):
        pause_until = now + max(floor, min(cap, outcome.delay))
        if pause_until > since + schedule_span(max_attempts):
            return GiveUp(outcome.failure, pause_until)
        return TryLater(pause_until, failed, outcome.failure, pause_until)
    failed += 1
    if failed >= max_attempts:
        return GiveUp(outcome.failure)
    return TryLater(now + retry_delay(failed) * (1 + SPREAD * rand()), failed, outcome.failure)


def held(failed: int, paused_until: float) -> TryLater:
    """An event read but not delivered, because the receiver asked for quiet until ``paused_until``: back then, its record unchanged."""
    return TryLater(paused_until, failed)


SLOW = 0.02   # seconds a receiver takes to answer a POST, past which a delivery thread sends several at once
FAN_OUT = 8   # POSTs one delivery thread has in flight at most, to a slow receiver


def posts_at_once(seconds_per_post: float) -> int:
    """How many POSTs a delivery thread sends at once, given how long the receiver has been taking to answer one.

    One after the other while it answers within :data:`SLOW`: that costs the
    least CPU, and a thread then delivers over 50 events a second. A slower
    receiver gets :data:`FAN_OUT` at once (each on a kept-alive connection of
    its own), so that one taking 100 ms still gets 80 a second from each
    worker process, not 10.
    """
    return FAN_OUT if seconds_per_post > SLOW else 1


def batch_size(seconds_per_post: float, claim_idle: float, most: int) -> int:
    """Entries a delivery thread reads at once: ``most``, fewer for a slow receiver.

    Few enough that the last of them is begun within a quarter of
    ``claim_idle``, after which another consumer may claim an entry still pending.
    """
    rounds = int(claim_idle / 4 / max(seconds_per_post, 1e-3))
    return max(1, min(most, rounds * posts_at_once(seconds_per_post)))
