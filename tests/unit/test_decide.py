"""The retry decision as a table: every kind of outcome, on the first, a middle and the last allowed attempt.

The clock and the random draw are pinned (``rand`` always 0.5), so every due
time is exact: a Retry-After waits its clamped delay plus half the jitter; a
backoff waits half of min(cap, base * 2^(attempt-1)).
"""

from __future__ import annotations

import pytest
import redis

from payapi.errors import NotReplicated
from payapi.models import FeedbackResponse, RefundResponse
from payapi.outcomes import Failure, FailureKind, Outcome, Permanent, Rejected, RetryAfter, Success, Transient
from tasks.jobs.decide import (
    TURN_LATE,
    TURN_LEAD,
    Admit,
    Call,
    DeadLetterJob,
    Decision,
    Defer,
    Requeue,
    RetryPolicy,
    Settle,
    Skip,
    Start,
    Succeed,
    decide,
    invalid_job,
    on_error,
    on_turn,
    start,
    wait_for_turn,
    wait_out_pause,
)
from tasks.states import DeadLetterReason, DeferCause, Verdict

NOW = 1_000_000.0
POLICY = RetryPolicy(max_attempts=8, backoff_base=1.0, backoff_cap=300.0, retry_after_floor=1.0, retry_after_cap=900.0,
                     retry_after_jitter=0.5)
FIRST, MIDDLE, LAST = 1, 4, 8

THROTTLED = Failure(FailureKind.THROTTLED, 429, error_msg="Too Many Requests")
UNAVAILABLE = Failure(FailureKind.UNAVAILABLE, 503, error_msg="ServiceUnavailableException")
SERVER_ERROR = Failure(FailureKind.SERVER_ERROR, 500, error_msg="ServiceException")
TIMEOUT = Failure(FailureKind.TIMEOUT, error_type="ReadTimeout")
UNKNOWN_TRIP = Failure(FailureKind.REFUSED, 400, "UnknownShoppingTrip", "UnknownShoppingTrip: no shopping trip 't1'")
UNUSABLE = Failure(FailureKind.UNUSABLE_BODY, 200, detail="refund reconciliationId: Field required")
REJECTED = Failure(FailureKind.REJECTED, 200, "OUTSTANDING_BALANCE")


def half(x: float) -> float:
    return x * 0.5


def retry_after(delay: float, failure: Failure, clamped: float, *, pause: bool) -> Decision:
    return Defer(NOW + clamped + half(POLICY.retry_after_jitter), DeferCause.RETRY_AFTER, failure, clamped,
                 NOW + clamped if pause else None, throttled=pause)


def backoff(attempt: int, failure: Failure) -> Decision:
    return Defer(NOW + half(min(300.0, 2.0 ** (attempt - 1))), DeferCause.BACKOFF, failure,
                 throttled=failure.kind is FailureKind.THROTTLED)


ROWS: list[tuple[str, Outcome, int, Decision]] = []
for attempt in (FIRST, MIDDLE, LAST):
    ROWS += [
        (f"capture-200-attempt-{attempt}", Success(), attempt, Succeed({})),
        (f"refund-200-attempt-{attempt}", Success(RefundResponse(reconciliationId="R1")), attempt, Succeed({"reconciliationId": "R1"})),
        (f"feedback-accepted-attempt-{attempt}", Success(FeedbackResponse(status="Accepted", reasonCode="OK")), attempt,
         Succeed({"status": "Accepted", "reasonCode": "OK"})),
        (f"feedback-rejected-attempt-{attempt}", Rejected(REJECTED), attempt, DeadLetterJob(DeadLetterReason.FEEDBACK_REJECTED, REJECTED)),
        (f"400-attempt-{attempt}", Permanent(UNKNOWN_TRIP), attempt, DeadLetterJob(DeadLetterReason.PERMANENT, UNKNOWN_TRIP)),
    ]
for attempt, exhausted in ((FIRST, False), (MIDDLE, False), (LAST, True)):
    for name, outcome, clamped, pause in (
        ("429-retry-after-30", RetryAfter(30.0, THROTTLED), 30.0, True),
        ("429-retry-after-below-floor", RetryAfter(0.0, THROTTLED), 1.0, True),
        ("429-retry-after-above-cap", RetryAfter(86400.0, THROTTLED), 900.0, True),
        ("429-documented-600", RetryAfter(600.0, THROTTLED), 600.0, True),
        ("503-retry-after-30", RetryAfter(30.0, UNAVAILABLE), 30.0, False),
        ("503-retry-after-below-floor", RetryAfter(0.2, UNAVAILABLE), 1.0, False),
        ("503-retry-after-above-cap", RetryAfter(7200.0, UNAVAILABLE), 900.0, False),
    ):
        assert isinstance(outcome, RetryAfter)
        expected: Decision = (
            DeadLetterJob(DeadLetterReason.RETRIES_EXHAUSTED, outcome.failure, NOW + clamped if pause else None, throttled=pause)
            if exhausted else retry_after(outcome.delay, outcome.failure, clamped, pause=pause)
        )
        ROWS.append((f"{name}-attempt-{attempt}", outcome, attempt, expected))
    for name, failure in (
        ("429-without-delay", THROTTLED), ("503-without-delay", UNAVAILABLE), ("500", SERVER_ERROR), ("timeout", TIMEOUT),
        ("200-unusable-body", UNUSABLE),
    ):
        expected = (DeadLetterJob(DeadLetterReason.RETRIES_EXHAUSTED, failure, throttled=failure is THROTTLED) if exhausted
                    else backoff(attempt, failure))
        ROWS.append((f"{name}-attempt-{attempt}", Transient(failure), attempt, expected))


@pytest.mark.parametrize(("outcome", "attempts", "decision"), [pytest.param(o, a, d, id=i) for i, o, a, d in ROWS])
def test_the_decision_for_each_outcome_and_attempt(outcome: Outcome, attempts: int, decision: Decision) -> None:
    assert decide(outcome, attempts, POLICY, NOW, lambda: 0.5) == decision


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1.0), (2, 2.0), (5, 16.0), (9, 256.0), (10, 300.0), (63, 300.0), (10_000, 300.0)],
)
def test_backoff_doubles_per_attempt_up_to_the_cap_with_full_jitter(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy(max_attempts=100_000)
    lowest = decide(Transient(SERVER_ERROR), attempt, policy, NOW, lambda: 0.0)
    highest = decide(Transient(SERVER_ERROR), attempt, policy, NOW, lambda: 0.999999)

    assert isinstance(lowest, Defer) and isinstance(highest, Defer)
    assert lowest.until == NOW
    assert highest.until == pytest.approx(NOW + ceiling * 0.999999)


def test_a_retry_after_is_never_shortened_by_the_jitter_only_lengthened() -> None:
    earliest = decide(RetryAfter(30.0, UNAVAILABLE), 1, POLICY, NOW, lambda: 0.0)
    latest = decide(RetryAfter(30.0, UNAVAILABLE), 1, POLICY, NOW, lambda: 0.999999)

    assert isinstance(earliest, Defer) and isinstance(latest, Defer)
    assert earliest.until == NOW + 30.0
    assert NOW + 30.0 < latest.until < NOW + 30.5


def test_a_turn_later_than_a_worker_waits_is_waited_for_in_the_deferred_set_due_a_little_before_it() -> None:
    assert wait_for_turn(NOW + 20, 27.0, 0.25) == Defer(NOW + 19.75, DeferCause.PACED, turn=NOW + 20, pace=27.0)


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_a_paused_endpoint_is_waited_out_until_the_pause_ends_plus_jitter_without_a_failure(draw: float) -> None:
    decision = wait_out_pause(NOW + 600, POLICY, lambda: draw)

    assert decision == Defer(NOW + 600 + draw * 0.5, DeferCause.PAUSED, paused_until=NOW + 600)


def test_policy_from_settings_reads_every_field() -> None:
    from config.settings import Settings

    settings = Settings(max_attempts=3, backoff_base=0.2, backoff_cap=5, retry_after_floor=0, retry_after_cap=60, retry_after_jitter=2)

    assert RetryPolicy.from_settings(settings) == RetryPolicy(3, 0.2, 5.0, 0.0, 60.0, 2.0)


# --- what BEGIN's verdict means ------------------------------------------------------------------

PACE = 27.0
START_ROWS: list[tuple[str, Verdict, float | None, float | None, Start]] = [
    ("run-unpaced", Verdict.RUN, None, None, Call(None)),
    ("run-on-its-turn", Verdict.RUN, NOW + 0.3, PACE, Call(NOW + 0.3)),
    ("settled-capture-settles-without-a-call", Verdict.SETTLED, 1_700_000_000.0, None, Settle(1_700_000_000)),
    ("paused-waits-out-the-pause", Verdict.PAUSED, NOW + 600, None, Defer(NOW + 600 + half(POLICY.retry_after_jitter), DeferCause.PAUSED,
                                                                         paused_until=NOW + 600)),
    ("paced-waits-for-its-turn-in-the-deferred-set", Verdict.PACED, NOW + 20, PACE,
     Defer(NOW + 20 - TURN_LEAD, DeferCause.PACED, turn=NOW + 20, pace=PACE)),
    ("unrecorded-message-is-enqueued-through-payq-s-rules", Verdict.UNRECORDED, None, None, Admit()),
    ("queued-asks-again-when-its-store-has-a-share", Verdict.QUEUED, NOW + 3, PACE,
     Defer(NOW + 3, DeferCause.PACED, turn=NOW + 3, pace=PACE)),
] + [(f"{v.value}-has-nothing-to-do", v, None, None, Skip(v))
     for v in (Verdict.SUCCEEDED, Verdict.DEAD, Verdict.DEFERRED, Verdict.HELD, Verdict.WAITING, Verdict.DIFFERS)]


@pytest.mark.parametrize(("verdict", "until", "pace", "action"), [pytest.param(v, u, p, a, id=i) for i, v, u, p, a in START_ROWS])
def test_what_a_delivery_does_with_each_verdict(verdict: Verdict, until: float | None, pace: float | None, action: Start) -> None:
    assert start(verdict, until, pace, POLICY, lambda: 0.5) == action


def test_every_verdict_has_a_row() -> None:
    assert {row[1] for row in START_ROWS} == set(Verdict)


@pytest.mark.parametrize(
    ("turn", "pace", "now", "gives_up"),
    [
        pytest.param(None, None, NOW, False, id="unpaced-calls"),
        pytest.param(NOW, PACE, NOW, False, id="on-its-turn-calls"),
        pytest.param(NOW, PACE, NOW + TURN_LATE / 2, False, id="within-the-lateness-calls"),
        pytest.param(NOW, PACE, NOW + TURN_LATE + 0.001, True, id="later-gives-the-turn-up"),
        pytest.param(NOW, PACE, NOW + 30, True, id="much-later-gives-the-turn-up"),
        pytest.param(NOW, None, NOW + 30, False, id="no-pace-in-force-calls"),
    ],
)
def test_a_worker_late_for_its_turn_gives_it_up_and_takes_a_new_one(turn: float | None, pace: float | None, now: float, gives_up: bool) -> None:
    expected = Defer(now, DeferCause.PACED, turn=now, pace=pace) if gives_up else None
    assert on_turn(turn, pace, now) == expected


def test_a_job_that_breaks_the_models_is_dead_lettered_as_invalid_with_the_problem_bounded() -> None:
    decision = invalid_job("amount: " + "x" * 1000)

    assert decision.reason is DeadLetterReason.INVALID_JOB
    assert decision.failure.kind is FailureKind.INVALID_JOB and decision.failure.detail == ("amount: " + "x" * 1000)[:500]


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        pytest.param(redis.ConnectionError("Connection refused"), Requeue("Connection refused"), id="redis-unreachable-requeues"),
        pytest.param(redis.TimeoutError("Timeout reading"), Requeue("Timeout reading"), id="redis-timeout-requeues"),
        pytest.param(NotReplicated("only 0 of 1"), Requeue("only 0 of 1"), id="too-few-replicas-requeues"),
        pytest.param(KeyError("storeId"), DeadLetterJob(DeadLetterReason.INTERNAL_ERROR, Failure(FailureKind.INTERNAL, error_type="KeyError",
                                                                                                  detail="'storeId'")),
                     id="anything-else-is-an-internal-error"),
        pytest.param(redis.ResponseError("NOSCRIPT"), DeadLetterJob(DeadLetterReason.INTERNAL_ERROR, Failure(
            FailureKind.INTERNAL, error_type="ResponseError", detail="NOSCRIPT")), id="a-redis-error-reply-is-not-unreachable"),
    ],
)
def test_a_delivery_whose_handling_raised(exc: BaseException, action: Requeue | DeadLetterJob) -> None:
    assert on_error(exc) == action
