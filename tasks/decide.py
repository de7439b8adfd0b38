"""What a job does after a call: the retry decision, a pure function of the outcome.

The classifier (:mod:`payapi.outcomes`) says what an answer *is*; :func:`decide`
says what the job *does*: succeed, wait in the deferred set (after pausing its
endpoint, for a 429 with a delay), or go to the dead-letter store. It reads no
clock and draws no random number of its own (both are arguments), so it is
tested as a table; :mod:`tasks.execution` only carries its decisions out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from payapi.models import FeedbackResponse, RefundResponse
from payapi.outcomes import Failure, FailureKind, Outcome, Permanent, RetryAfter, Success, Transient
from tasks.backoff import compute_backoff, retry_after_due
from tasks.states import DeadLetterReason, DeferCause


@dataclass(frozen=True)
class RetryPolicy:
    """The settings the decision reads (see :class:`config.settings.Settings` for each)."""

    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    retry_after_floor: float = 1.0
    retry_after_cap: float = 900.0
    retry_after_jitter: float = 0.5
    exhausted: DeadLetterReason = DeadLetterReason.RETRIES_EXHAUSTED  # why a job out of attempts is dead-lettered

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy ``settings`` configure."""
        return cls(
            max_attempts=settings.max_attempts, backoff_base=settings.backoff_base, backoff_cap=settings.backoff_cap,
            retry_after_floor=settings.retry_after_floor, retry_after_cap=settings.retry_after_cap,
            retry_after_jitter=settings.retry_after_jitter,
        )

    def clamp(self, delay: float) -> float:
        """A server-sent delay within [floor, cap]."""
        return max(self.retry_after_floor, min(self.retry_after_cap, delay))


@dataclass(frozen=True)
class Succeed:
    """Record the success with ``result`` (a refund's reconciliationId, a report's status; a capture settles)."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Defer:
    """Park the job until ``until``; first pause the endpoint until ``pause_until`` for every worker, if set.

    ``delay`` is the API's delay after clamping (``RETRY_AFTER``), ``failure``
    what went wrong (none when the job waits without having called),
    ``paused_until`` the end of the pause being waited out (``PAUSED``),
    ``turn`` and ``pace`` the job's turn at its endpoint's pace (``PACED``).
    ``throttled``: the answer was a 429, and the endpoint's pace learns from it.
    """

    until: float
    cause: DeferCause
    failure: Failure | None = None
    delay: float | None = None
    pause_until: float | None = None
    paused_until: float | None = None
    turn: float | None = None
    pace: float | None = None
    throttled: bool = False


@dataclass(frozen=True)
class DeadLetterJob:
    """Write the job to the dead-letter store with ``reason``; ``failure`` is what the operator reads.

    ``pause_until``: a last answer of 429 with a delay still pauses the endpoint
    for every worker first (the API's limit holds for every other job), and a
    ``throttled`` one still teaches the endpoint's pace.
    """

    reason: DeadLetterReason
    failure: Failure
    pause_until: float | None = None
    throttled: bool = False


Decision = Succeed | Defer | DeadLetterJob


def decide(outcome: Outcome, attempts: int, policy: RetryPolicy, now: float, rand: Callable[[], float]) -> Decision:
    """What the job does after its ``attempts``-th call came back as ``outcome``.

    - Success: succeed, keeping what the body carries; a report ``Rejected``
      by fraud and abuse is dead-lettered as ``feedback-rejected``.
    - Permanent: dead-lettered as ``permanent`` after this one call.
    - RetryAfter: runs again after the delay, clamped to [floor, cap], plus up
      to the jitter; a throttled one (429) pauses the endpoint for that long.
    - Transient: exponential backoff with full jitter.
    - A 429, with a delay or without, is ``throttled``: the endpoint's pace learns from it.
    - RetryAfter or Transient on the last allowed attempt: dead-lettered as
      ``retries-exhausted`` (the policy's ``exhausted``: ``notify-failed`` for
      notifications) with the failure (a 429's pause is still set).
    """
    if isinstance(outcome, Success):
        body = outcome.body
        if isinstance(body, FeedbackResponse):
            if body.status == "Rejected":
                return DeadLetterJob(DeadLetterReason.FEEDBACK_REJECTED, Failure(FailureKind.REJECTED, 200, body.reasonCode))
            return Succeed({"status": body.status, "reasonCode": body.reasonCode})
        if isinstance(body, RefundResponse):
            return Succeed({"reconciliationId": body.reconciliationId})
        return Succeed({})
    if isinstance(outcome, Permanent):
        return DeadLetterJob(DeadLetterReason.PERMANENT, outcome.failure)
    pause_until = None
    if isinstance(outcome, RetryAfter):
        delay = policy.clamp(outcome.delay)
        if outcome.throttled:
            pause_until = now + delay
        defer = Defer(retry_after_due(now, delay, policy.retry_after_jitter, rand), DeferCause.RETRY_AFTER,
                      outcome.failure, delay, pause_until, throttled=outcome.throttled)
    else:
        assert isinstance(outcome, Transient)
        wait = compute_backoff(attempts, policy.backoff_base, policy.backoff_cap, rand)
        defer = Defer(now + wait, DeferCause.BACKOFF, outcome.failure, throttled=outcome.throttled)
    if attempts >= policy.max_attempts:
        return DeadLetterJob(policy.exhausted, outcome.failure, pause_until, outcome.throttled)
    return defer


def wait_for_turn(turn: float, pace: float, lead: float) -> Defer:
    """A job whose turn at its endpoint's pace is later than a worker waits: it waits in the deferred set.

    It is due ``lead`` seconds before its turn, so that the mover has put it
    back on its queue and a worker has taken it by then; that worker waits
    out the rest and calls on the turn, not a poll interval after it.
    """
    return Defer(turn - lead, DeferCause.PACED, turn=turn, pace=pace)


def wait_out_pause(paused_until: float, policy: RetryPolicy, rand: Callable[[], float]) -> Defer:
    """A job that found its endpoint paused: it runs again when the pause ends, plus up to the jitter; no call, no attempt."""
    return Defer(retry_after_due(paused_until, 0.0, policy.retry_after_jitter, rand), DeferCause.PAUSED, paused_until=paused_until)
