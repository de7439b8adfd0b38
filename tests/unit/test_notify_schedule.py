"""What an event does after a delivery, as tables: the receiver's answer, then the step (delivered, later, give up).

The receiver's status goes through :func:`payapi.outcomes.classify_receiver` and
then :func:`tasks.notify.schedule.next_step`, as the delivery threads do. The clock
and the random draw are pinned (``rand`` always 0.5), so every due time is exact.
"""

from __future__ import annotations

import logging

import pytest

from payapi.outcomes import Failure, FailureKind, classify_exception, classify_receiver
from tasks.notify.schedule import (
    FAN_OUT,
    SCHEDULE,
    SPREAD,
    Delivered,
    GiveUp,
    Step,
    TryLater,
    batch_size,
    held,
    next_step,
    posts_at_once,
    retry_delay,
    schedule_span,
)
from workers.delivery import QUIET_TOLD_EVERY, ReceiverQuiet

NOW = 1_000_000.0
FLOOR, CAP, MAX = 1.0, 900.0, 8
SPAN = 99_305.0  # the schedule's span with the default 8 attempts: 27.6 hours


def step(status: int, headers: dict[str, str] | None = None, failed: int = 0, body: bytes = b"", since: float = NOW) -> Step:
    outcome = classify_receiver(status, headers or {}, body, NOW)
    return next_step(outcome, failed, MAX, since, NOW, FLOOR, CAP, lambda: 0.5)


def later(wait: float) -> float:
    return NOW + wait * (1 + SPREAD * 0.5)


@pytest.mark.parametrize(("failed", "wait"), [
    (1, 5.0), (2, 300.0), (3, 1800.0), (4, 7200.0), (5, 18000.0), (6, 36000.0), (7, 36000.0), (8, 36000.0), (20, 36000.0),
])
def test_the_retry_schedule_is_svix_s(failed: int, wait: float) -> None:
    assert retry_delay(failed) == wait


@pytest.mark.parametrize(("max_attempts", "span"), [(1, 0.0), (2, 5.0), (3, 305.0), (MAX, SPAN), (10, SPAN + 2 * 36000.0)])
def test_the_schedule_spans_the_waits_between_its_attempts(max_attempts: int, span: float) -> None:
    assert schedule_span(max_attempts) == span
    assert schedule_span(MAX) == sum(SCHEDULE)


THROTTLED = Failure(FailureKind.THROTTLED, 429)
UNAVAILABLE = Failure(FailureKind.UNAVAILABLE, 503)


@pytest.mark.parametrize(("status", "headers", "failed", "since", "expected"), [
    # 2xx: delivered, whatever came before
    (200, {}, 0, NOW, Delivered()),
    (204, {}, MAX - 1, NOW, Delivered()),
    (299, {}, 3, NOW, Delivered()),
    # 429 / 503 with Retry-After: a request for time: the receiver paused for every worker, the event back at its end, no attempt used
    (429, {"Retry-After": "30"}, 0, NOW, TryLater(NOW + 30, 0, THROTTLED, NOW + 30)),
    (503, {"retry-after": "2"}, 3, NOW, TryLater(NOW + 2, 3, UNAVAILABLE, NOW + 2)),
    (429, {"Retry-After": "0"}, 0, NOW, TryLater(NOW + FLOOR, 0, THROTTLED, NOW + FLOOR)),     # clamped up to the floor
    (503, {"Retry-After": "86400"}, 0, NOW, TryLater(NOW + CAP, 0, UNAVAILABLE, NOW + CAP)),  # and down to the cap
    (429, {"Retry-After": "30"}, MAX - 1, NOW, TryLater(NOW + 30, MAX - 1, THROTTLED, NOW + 30)),  # even after the last attempt's failure
    # ... bounded by the schedule's span from the event's outcome: a pause ending past it gives up (still pausing the receiver)
    (429, {"Retry-After": "30"}, 0, NOW + 30 - SPAN, TryLater(NOW + 30, 0, THROTTLED, NOW + 30)),
    (429, {"Retry-After": "30"}, 0, NOW + 29 - SPAN, GiveUp(THROTTLED, NOW + 30)),
    (503, {"Retry-After": "2"}, 5, NOW - 2 * SPAN, GiveUp(UNAVAILABLE, NOW + 2)),
    # 429 / 503 without a usable Retry-After: a failed delivery, on the schedule
    (429, {}, 0, NOW, TryLater(later(5.0), 1, THROTTLED)),
    (503, {"Retry-After": "soon"}, 1, NOW, TryLater(later(300.0), 2, UNAVAILABLE)),
    # any other 4xx or 5xx: the schedule (a receiver's refusal is usually mended within hours), then give up
    (400, {}, 0, NOW, TryLater(later(5.0), 1, Failure(FailureKind.REFUSED, 400))),
    (410, {}, 3, NOW, TryLater(later(7200.0), 4, Failure(FailureKind.REFUSED, 410))),
    (500, {}, 6, NOW, TryLater(later(36000.0), 7, Failure(FailureKind.SERVER_ERROR, 500))),
    (502, {}, MAX - 1, NOW, GiveUp(Failure(FailureKind.SERVER_ERROR, 502))),
    (301, {}, 0, NOW, TryLater(later(5.0), 1, Failure(FailureKind.REFUSED, 301))),  # redirects are not followed
])
def test_what_a_receiver_s_answer_leads_to(status: int, headers: dict[str, str], failed: int, since: float, expected: Step) -> None:
    assert step(status, headers, failed, since=since) == expected


def test_a_receiver_asking_for_time_all_day_uses_no_attempt_and_is_given_up_after_the_schedule_s_span() -> None:
    since, now, failed, answers = NOW, NOW, 0, 0
    throttled = classify_receiver(429, {"Retry-After": "3"}, b"", now)
    while isinstance(decided := next_step(throttled, failed, MAX, since, now, FLOOR, CAP, lambda: 0.5), TryLater):
        assert (decided.failed, decided.until) == (0, now + 3)
        now, answers = decided.until, answers + 1
    assert isinstance(decided, GiveUp) and decided.pause_until == now + 3
    assert now + 3 > since + SPAN >= now, "given up at the first pause that would end past the span, about 27 hours on"
    assert answers == int(SPAN // 3)


def test_a_failure_after_many_requests_for_time_waits_the_schedule_s_first_step() -> None:
    # the receiver: 429s for a while, then a 500 waited 30 minutes, because each 429 had moved it along the schedule
    failed = 0
    for _ in range(15):
        decided = step(429, {"Retry-After": "3"}, failed)
        assert isinstance(decided, TryLater)
        failed = decided.failed
    assert step(500, failed=failed) == TryLater(later(5.0), 1, Failure(FailureKind.SERVER_ERROR, 500))


def test_an_event_read_while_the_receiver_asks_for_quiet_comes_back_at_the_quiet_s_end_unchanged() -> None:
    assert held(3, NOW + 3) == TryLater(NOW + 3, 3)


def test_no_answer_at_all_is_tried_again_on_the_schedule_then_given_up() -> None:
    outcome = classify_exception(TimeoutError("read timed out"))
    first = next_step(outcome, 0, MAX, NOW, NOW, FLOOR, CAP, lambda: 0.5)
    assert isinstance(first, TryLater) and (first.until, first.failed, first.pause_until) == (later(5.0), 1, None)
    assert isinstance(next_step(outcome, MAX - 1, MAX, NOW, NOW, FLOOR, CAP, lambda: 0.5), GiveUp)


def test_a_receiver_s_body_is_kept_short_in_the_failure() -> None:
    later_step = step(500, body=b"x" * 10_000)
    assert isinstance(later_step, TryLater) and later_step.failure is not None
    assert later_step.failure.detail is not None and len(later_step.failure.detail) < 1000


@pytest.mark.parametrize(
    ("seconds_per_post", "at_once", "batch"),
    [
        pytest.param(0.0, 1, 64, id="receiver-not-yet-measured"),
        pytest.param(0.001, 1, 64, id="fast-receiver-one-after-the-other"),
        pytest.param(0.02, 1, 64, id="at-the-threshold-still-one-after-the-other"),
        pytest.param(0.021, FAN_OUT, 64, id="slower-several-at-once"),
        pytest.param(0.1, FAN_OUT, 64, id="100-ms-receiver-37-rounds-of-8"),
        pytest.param(1.0, FAN_OUT, 24, id="1-s-receiver-3-rounds-of-8"),
        pytest.param(10.0, FAN_OUT, 1, id="hanging-receiver-one-at-a-time-at-least"),
    ],
)
def test_a_slow_receiver_gets_several_posts_at_once_and_smaller_batches(seconds_per_post: float, at_once: int, batch: int) -> None:
    # every entry of a batch must be begun within a quarter of the 15 s claim time
    assert posts_at_once(seconds_per_post) == at_once
    assert batch_size(seconds_per_post, 15.0, 64) == batch


def test_a_receiver_asking_for_quiet_is_logged_as_one_state(caplog: pytest.LogCaptureFixture) -> None:
    # entering, once a minute while it lasts (not once per answer), and leaving: one line each, no traceback
    clock = [0.0]
    quiet = ReceiverQuiet(clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="payq.notify"):
        quiet.delivered()  # no quiet yet: nothing to say
        for _ in range(45):  # a 429 every 3 s for 135 s
            quiet.asked(429, NOW)
            clock[0] += 3.0
        quiet.delivered()
        quiet.delivered()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith("delivery: the receiver asked for quiet (HTTP 429 with Retry-After)")
    assert [line.startswith("delivery: the receiver still asks for quiet") for line in lines[1:3]] == [True, True]
    assert "(21 times in 60 s)" in lines[1] and QUIET_TOLD_EVERY == 60.0
    assert lines[3] == "delivery: the receiver takes deliveries again, after asking for quiet 45 times in 135 s"
    assert not any(r.exc_info for r in caplog.records)
