"""What a job does: every rule that turns what a worker found into an action, as pure functions.

- :func:`start`: what BEGIN's verdict means (call, settle, wait, or nothing to do);
- :func:`on_turn`: whether a worker that woke for its turn at the pace may still call;
- :func:`decide`: the retry decision after a call. The classifier
  (:mod:`payapi.outcomes`) says what an answer *is*; this says what the job
  *does*: succeed, wait in the deferred set (after pausing its endpoint, for a
  429 with a delay), or go to the dead-letter store;
- :func:`invalid_job` and :func:`on_error`: a job that cannot be read, and a
  delivery whose handling raised.

None reads a clock or draws a random number of its own (both are arguments),
so each is tested as a table; :mod:`workers.execution` only carries them out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from config.settings import Settings
from payapi.errors import NotReplicated
from payapi.models import FeedbackResponse, RefundResponse
from payapi.outcomes import Failure, FailureKind, Outcome, Permanent, Rejected, RetryAfter, Success, Transient
from tasks.jobs.backoff import compute_backoff, retry_after_due
from tasks.states import DeadLetterReason, DeferCause, Verdict

# A turn this close is waited for by the worker that took the job; a later one in the deferred set,
# so no worker thread sleeps for seconds and no waiting job is held in a worker's memory.
TURN_WAIT_IN_PLACE = 0.5
# A job waiting in the deferred set for its turn is due this much before it: the mover's poll and a
# worker's pick-up fit in it, and the worker waits out the rest, so calls go out on their turns.
TURN_LEAD = 0.25
# A worker that wakes for a turn later than this (a busy host, a stalled thread) gives the turn up and
# takes a new one instead of calling late: turns are 1/pace apart, and at 93% of a limit a call more
# than ~75 ms late could land in the same one-second window as the limit's worth of punctual ones;
# what is left of those 75 ms covers the time between the wake and the request going out.
TURN_LATE = 0.05


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


@dataclass(frozen=True)
class Call:
    """Call the API; at ``turn`` when the endpoint is paced (a worker waits that little in place, then calls)."""

    turn: float | None = None


@dataclass(frozen=True)
class Settle:
    """A capture the API already took: finish it (record it, chain its report) without calling again."""

    settled_at: int


@dataclass(frozen=True)
class Skip:
    """A delivery with nothing to do (``verdict`` says why): the job is settled, deferred, or another worker holds it.

    ``lost``: this delivery held the job but lost its lease (its worker was
    paused or cut off past it) and the job went to another: no call was made
    after that, and no outcome written over the new holder's.
    """

    verdict: Verdict
    lost: bool = False


@dataclass(frozen=True)
class Admit:
    """No job is recorded under the message's id (Celery's own ``send_task``): enqueue it through payq's rules first (:mod:`tasks.jobs.admission`)."""


Start = Call | Settle | Defer | Skip | Admit


def start(verdict: Verdict, until: float | None, pace: float | None, policy: RetryPolicy, rand: Callable[[], float]) -> Start:
    """What a delivery does with BEGIN's ``verdict`` (``until``: the verdict's time, ``pace``: the endpoint's pace in force).

    - run: call, at the turn BEGIN gave it (``until``) when the endpoint is paced;
    - settled: a capture that already succeeded (at ``until``) settles again without a call;
    - paused: wait out the endpoint's pause (:func:`wait_out_pause`), no call and no attempt;
    - paced: a turn later than a worker waits is waited for in the deferred set (:func:`wait_for_turn`);
    - unrecorded: a message that came around payq's doors is enqueued through them, and calls nothing itself;
    - queued: its store has had its share of the turns: wait in the deferred set and ask again (:func:`wait_for_share`);
    - anything else: nothing to do.
    """
    if verdict is Verdict.UNRECORDED:
        return Admit()
    if verdict is Verdict.RUN:
        return Call(until)
    if verdict is Verdict.SETTLED:
        assert until is not None
        return Settle(int(until))
    if verdict is Verdict.PAUSED:
        assert until is not None
        return wait_out_pause(until, policy, rand)
    if verdict is Verdict.PACED:
        assert until is not None and pace is not None
        return wait_for_turn(until, pace, TURN_LEAD)
    if verdict is Verdict.QUEUED:
        assert until is not None
        return wait_for_share(until, pace)
    return Skip(verdict)


def on_turn(turn: float | None, pace: float | None, now: float) -> Defer | None:
    """None: call now. A worker that woke more than ``TURN_LATE`` after its turn gives the turn up instead.

    Calling that late could crowd the turns after it into one second; the job
    takes a new turn in the deferred set, and its attempt is given back.
    """
    if pace is None or turn is None or now - turn <= TURN_LATE:
        return None
    return wait_for_turn(now, pace, 0.0)


def invalid_job(problem: str) -> DeadLetterJob:
    """A job whose fields break the models (only a message published around the producer): dead-lettered as ``invalid-job``."""
    return DeadLetterJob(DeadLetterReason.INVALID_JOB, Failure(FailureKind.INVALID_JOB, detail=problem[:500]))


@dataclass(frozen=True)
class Requeue:
    """Hand the message back unacknowledged: the job's outcome could not be recorded (``cause``)."""

    cause: str


def on_error(exc: BaseException) -> Requeue | DeadLetterJob:
    """What a delivery whose handling raised ``exc`` does.

    Redis unreachable, or too few replicas confirming (after the worker waited
    up to the task time limit): the message goes back to its queue, since Redis
    is where the job's state lives and its outcome could not be recorded. Anything else
    is unforeseen: the job is dead-lettered as ``internal-error``, kept for an
    operator rather than dropped.
    """
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | NotReplicated):
        return Requeue(str(exc))
    return DeadLetterJob(DeadLetterReason.INTERNAL_ERROR, Failure(FailureKind.INTERNAL, error_type=type(exc).__name__, detail=str(exc)[:500]))


def decide(outcome: Outcome, attempts: int, policy: RetryPolicy, now: float, rand: Callable[[], float]) -> Decision:
    """What the job does after its ``attempts``-th call came back as ``outcome``.

    - Success: succeed, keeping what the body carries.
    - Rejected (fraud and abuse did not take a report): dead-lettered as ``feedback-rejected``.
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
            return Succeed({"status": body.status, "reasonCode": body.reasonCode})
        if isinstance(body, RefundResponse):
            return Succeed({"reconciliationId": body.reconciliationId})
        return Succeed({})
    if isinstance(outcome, Rejected):
        return DeadLetterJob(DeadLetterReason.FEEDBACK_REJECTED, outcome.failure)
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


def wait_for_share(ask_at: float, pace: float | None) -> Defer:
    """A job whose store has had its share of the endpoint's turns (or its own cap's calls: ``pace`` None when the
    endpoint is not paced) waits in the deferred set until ``ask_at``, then asks again.

    Recorded as waiting for its turn (``paced``, a cause the previous version
    reads too); its turn is taken when it asks (:mod:`tasks.pacing.fairness`).
    """
    return Defer(ask_at, DeferCause.PACED, turn=ask_at, pace=pace)


def wait_out_pause(paused_until: float, policy: RetryPolicy, rand: Callable[[], float]) -> Defer:
    """A job that found its endpoint paused: it runs again when the pause ends, plus up to the jitter; no call, no attempt."""
    return Defer(retry_after_due(paused_until, 0.0, policy.retry_after_jitter, rand), DeferCause.PAUSED, paused_until=paused_until)
