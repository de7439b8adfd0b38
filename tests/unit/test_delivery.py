"""What a notification does after a delivery, as tables: the receiver's answer, then the step (deliver, later, give up).

The receiver's status goes through :func:`payapi.outcomes.classify_receiver` and
then :func:`tasks.notify.schedule.next_step`, as the delivery loop does. The clock
and the random draw are pinned (``rand`` always 0.5), so every due time is exact.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from payapi.outcomes import Failure, FailureKind, classify_exception, classify_receiver
from tasks.notify.client import WebhookClient
from tasks.notify.schedule import FAN_OUT, SCHEDULE, SPREAD, Delivered, GiveUp, Step, TryLater, batch_size, next_step, posts_at_once, retry_delay

NOW = 1_000_000.0
FLOOR, CAP, MAX = 1.0, 900.0, 8


def step(status: int, headers: dict[str, str] | None = None, attempt: int = 1, body: bytes = b"") -> Step:
    outcome = classify_receiver(status, headers or {}, body, NOW)
    return next_step(outcome, attempt, MAX, NOW, FLOOR, CAP, lambda: 0.5)


def later(wait: float) -> float:
    return NOW + wait * (1 + SPREAD * 0.5)


@pytest.mark.parametrize(("failed", "wait"), [
    (1, 5.0), (2, 300.0), (3, 1800.0), (4, 7200.0), (5, 18000.0), (6, 36000.0), (7, 36000.0), (8, 36000.0), (20, 36000.0),
])
def test_the_retry_schedule_is_svix_s(failed: int, wait: float) -> None:
    assert retry_delay(failed) == wait


def test_the_schedule_spans_about_a_day_with_the_default_attempts() -> None:
    assert sum(retry_delay(n) for n in range(1, MAX)) == sum(SCHEDULE) == 99_305.0  # 27.6 hours


THROTTLED = Failure(FailureKind.THROTTLED, 429)
UNAVAILABLE = Failure(FailureKind.UNAVAILABLE, 503)


@pytest.mark.parametrize(("status", "headers", "attempt", "expected"), [
    # 2xx: delivered, whatever the attempt
    (200, {}, 1, Delivered()),
    (204, {}, MAX, Delivered()),
    (299, {}, 3, Delivered()),
    # 429 / 503 with Retry-After: the receiver is paused for every worker, the event comes back after it
    (429, {"Retry-After": "30"}, 1, TryLater(NOW + 30 + SPREAD * 0.5, THROTTLED, NOW + 30)),
    (503, {"retry-after": "2"}, 3, TryLater(NOW + 2 + SPREAD * 0.5, UNAVAILABLE, NOW + 2)),
    (429, {"Retry-After": "0"}, 1, TryLater(NOW + FLOOR + SPREAD * 0.5, THROTTLED, NOW + FLOOR)),     # clamped up to the floor
    (503, {"Retry-After": "86400"}, 1, TryLater(NOW + CAP + SPREAD * 0.5, UNAVAILABLE, NOW + CAP)),  # and down to the cap
    (429, {"Retry-After": "30"}, MAX, GiveUp(THROTTLED, NOW + 30)),                                 # the last: still pauses
    # 429 / 503 without a usable Retry-After: the schedule
    (429, {}, 1, TryLater(later(5.0), THROTTLED)),
    (503, {"Retry-After": "soon"}, 2, TryLater(later(300.0), UNAVAILABLE)),
    # any other 4xx or 5xx: the schedule (a receiver's refusal is usually mended within hours), then give up
    (400, {}, 1, TryLater(later(5.0), Failure(FailureKind.REFUSED, 400))),
    (410, {}, 4, TryLater(later(7200.0), Failure(FailureKind.REFUSED, 410))),
    (500, {}, 7, TryLater(later(36000.0), Failure(FailureKind.SERVER_ERROR, 500))),
    (502, {}, MAX, GiveUp(Failure(FailureKind.SERVER_ERROR, 502))),
    (301, {}, 1, TryLater(later(5.0), Failure(FailureKind.REFUSED, 301))),  # redirects are not followed
])
def test_what_a_receiver_s_answer_leads_to(status: int, headers: dict[str, str], attempt: int, expected: Step) -> None:
    assert step(status, headers, attempt) == expected


def test_no_answer_at_all_is_tried_again_on_the_schedule_then_given_up() -> None:
    outcome = classify_exception(TimeoutError("read timed out"))
    first = next_step(outcome, 1, MAX, NOW, FLOOR, CAP, lambda: 0.5)
    assert isinstance(first, TryLater) and first.until == later(5.0) and first.pause_until is None
    assert isinstance(next_step(outcome, MAX, MAX, NOW, FLOOR, CAP, lambda: 0.5), GiveUp)


def test_a_receiver_s_body_is_kept_short_in_the_failure() -> None:
    later_step = step(500, body=b"x" * 10_000)
    assert isinstance(later_step, TryLater)
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


def test_the_webhook_client_signs_as_the_standard_webhooks_library_does() -> None:
    # payq signs by hand on its hot path (no datetime per event); the library is the reference
    secret = "whsec_" + base64.b64encode(b"payq-unit-secret-of-thirty-two!!").decode()
    body = '{"type":"job.succeeded","data":{"jobId":"cancel:s1:t1"}}'

    ours = WebhookClient("http://127.0.0.1:9/hooks", secret).sign("cancel:s1:t1:succeeded", 1_700_000_000, body.encode())

    assert ours == Webhook(secret).sign("cancel:s1:t1:succeeded", datetime.fromtimestamp(1_700_000_000, UTC), body)
