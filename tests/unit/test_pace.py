"""An endpoint's pace as tables: configured and learned limits, the cubic climb back, what a 429 teaches.

Everything here is a pure function of the learned state and the clock.
"""

from __future__ import annotations

import pytest

from tasks.pacing.rules import (
    BETA,
    CONFIGURED_SHARE,
    LESSON_LEAD,
    MIN_PACE,
    Learned,
    cut,
    learned_pace,
    lesson_at,
    measure,
    pace_at,
    same_burst,
)

T0 = 1_000_000.0
LEARNED = Learned(accepted=30.0, since=T0, climb=20.0)


@pytest.mark.parametrize(
    ("now", "pace"),
    [
        pytest.param(T0 - 5, 30 * BETA, id="during-the-pause-the-cut-pace-waits"),
        pytest.param(T0, 30 * BETA, id="when-the-pause-ends-90-percent-of-accepted"),
        pytest.param(T0 + 10, 30 * (1 - 0.1 * 0.125), id="halfway-up-the-climb"),
        pytest.param(T0 + 20, 30.0, id="back-at-accepted-after-the-climb"),
        pytest.param(T0 + 30, 30 * (1 + 0.1 * 0.125), id="then-probing-above-slowly"),
        pytest.param(T0 + 40, 30 * 1.1, id="ten-percent-above-after-two-climbs"),
        pytest.param(T0 + 20 + 20 * 3.0, 30 * (1 + 0.1 * 27), id="still-learned-below-four-times"),
        pytest.param(T0 + 20 + 20 * 3.2, None, id="forgotten-above-four-times-accepted"),
    ],
)
def test_the_learned_pace_is_cut_then_climbs_back_along_a_cubic(now: float, pace: float | None) -> None:
    got = learned_pace(LEARNED, now)

    assert got == pytest.approx(pace) if pace is not None else got is None


def test_a_learned_pace_never_falls_below_the_minimum() -> None:
    assert learned_pace(Learned(accepted=0.1, since=T0, climb=30), T0) == MIN_PACE


@pytest.mark.parametrize(
    ("learned", "configured", "now", "pace"),
    [
        pytest.param(None, None, T0, None, id="nothing-known-unpaced"),
        pytest.param(None, 30.0, T0, 30 * CONFIGURED_SHARE, id="configured-only-paced-just-below-it"),
        pytest.param(LEARNED, None, T0, 27.0, id="learned-only"),
        pytest.param(LEARNED, 20.0, T0, 20 * CONFIGURED_SHARE, id="configured-is-a-ceiling-for-the-learned"),
        pytest.param(LEARNED, 100.0, T0 + 40, 33.0, id="learned-below-a-generous-ceiling"),
        pytest.param(Learned(30, T0, 20), 100.0, T0 + 1000, 100 * CONFIGURED_SHARE, id="forgotten-learned-leaves-the-ceiling"),
    ],
)
def test_the_pace_is_the_lower_of_configured_and_learned(
    learned: Learned | None, configured: float | None, now: float, pace: float | None,
) -> None:
    got = pace_at(learned, configured, now)

    assert got == pytest.approx(pace) if pace is not None else got is None


NOW_TENTH = int(T0 * 10)


def spread(first_second_ago: float, seconds: float, per_tenth: int) -> list[tuple[int, int]]:
    """``per_tenth`` successes in every tenth of a second for ``seconds``, starting that long ago."""
    start = NOW_TENTH - round(first_second_ago * 10)
    return [(start + i, per_tenth) for i in range(round(seconds * 10))]


@pytest.mark.parametrize(
    ("successes", "rate"),
    [
        pytest.param([], None, id="no-successes-nothing-measured"),
        pytest.param([(NOW_TENTH - 3, 30)], 30.0, id="a-burst-within-a-second-counts-as-that-seconds-calls"),
        pytest.param(spread(2.5, 2.5, 3), 30.0, id="steady-at-the-limit"),
        pytest.param([(NOW_TENTH - 11, 8), (NOW_TENTH - 1, 8)], 8.0, id="two-windows-edges-are-not-one-second"),
        pytest.param([(NOW_TENTH - 10, 8), (NOW_TENTH - 1, 8)], 16.0, id="within-one-second-they-add-up"),
        pytest.param(spread(2.9, 0.5, 2) + spread(0.8, 0.5, 4), 20.0, id="the-busiest-second"),
        pytest.param([(NOW_TENTH - 100, 500), (NOW_TENTH - 5, 25)], 25.0, id="older-than-the-window-ignored"),
        pytest.param([(NOW_TENTH - 15, 0), (NOW_TENTH - 5, 25)], 25.0, id="empty-buckets-count-nothing"),
        # successes are counted by the tenth their call was sent in: the refused call's own tenth is before it
        pytest.param([(NOW_TENTH - 1, 16), (NOW_TENTH, 14)], 30.0, id="a-burst-sent-with-the-refused-call-counts"),
        # the pacing benchmark's burst: the limit took none of the calls sent after its refusal
        pytest.param([(NOW_TENTH, 30), (NOW_TENTH + 1, 0)], 30.0, id="a-full-window-refused-what-came-after"),
        pytest.param([*spread(2.5, 2.5, 3), (NOW_TENTH + 1, 2), (NOW_TENTH + 3, 3)], 30.0,
                     id="steady-a-few-in-flight-let-through-as-the-window-slides"),
        pytest.param([(NOW_TENTH - 1, 10), (NOW_TENTH, 20), (NOW_TENTH + 1, 15)], 30.0, id="half-as-many-after-still-a-limit"),
        # the storm benchmark's 429: its first call refused, the 100 in flight with it taken
        pytest.param([(NOW_TENTH - 1, 1), (NOW_TENTH, 50), (NOW_TENTH + 1, 49), (NOW_TENTH + 2, 2)], None,
                     id="taken-after-the-refusal-not-a-full-window"),
        pytest.param([(NOW_TENTH, 10), (NOW_TENTH + 11, 40)], 10.0, id="after-the-second-after-not-looked-at"),
    ],
)
def test_the_accepted_rate_is_the_busiest_second_of_the_last_seconds(successes: list[tuple[int, int]], rate: float | None) -> None:
    got = measure(successes, T0)

    assert got == pytest.approx(rate) if rate is not None else got is None


CALL = 13.0  # the longest API call: the connect and read timeouts


@pytest.mark.parametrize(
    ("now", "resume_at", "call", "at"),
    [
        pytest.param(T0 + 0.01, T0 + 2, CALL, T0 + 2 - LESSON_LEAD, id="in-force-before-a-short-pause-ends"),
        pytest.param(T0 + 0.01, T0 + 600, CALL, T0 + CALL, id="a-long-pause-waits-out-the-longest-call"),
        pytest.param(T0 + 0.01, T0 + 0.5, CALL, T0 + 0.01, id="a-pause-shorter-than-the-lead-measured-at-once"),
        pytest.param(T0 + 5.0, T0 + 6.0, CALL, T0 + 5.0, id="never-in-the-past"),
        # the successes are kept 20 s from when they were counted; the oldest of the window was sent 3 s before
        pytest.param(T0 + 0.01, T0 + 600, 60.0, T0 + 16.0, id="before-the-counts-it-needs-expire"),
    ],
)
def test_a_lesson_waits_for_the_calls_in_flight_and_is_in_force_before_the_pause_ends(
    now: float, resume_at: float, call: float, at: float,
) -> None:
    assert lesson_at(T0, now, resume_at, call) == pytest.approx(at)


@pytest.mark.parametrize(
    ("learned", "pace", "measured", "retry_after", "expected"),
    [
        pytest.param(None, None, 31.0, 2.0, Learned(31.0, T0, 30.0), id="first-429-learns-what-was-accepted"),
        pytest.param(None, None, 31.0, 600.0, Learned(31.0, T0, 6000.0), id="a-600s-retry-after-climbs-back-slowly"),
        pytest.param(LEARNED, 30.0, 45.0, 5.0, Learned(30.0, T0, 50.0), id="throttled-at-a-pace-the-limit-is-below-it"),
        pytest.param(LEARNED, 33.0, 25.0, 5.0, Learned(25.0, T0, 50.0), id="measured-below-the-pace-wins"),
        pytest.param(None, 28.5, None, 2.0, Learned(28.5, T0, 30.0), id="nothing-measured-the-configured-pace-teaches"),
        pytest.param(LEARNED, None, None, 2.0, LEARNED, id="nothing-to-learn-from-keeps-what-was-known"),
        pytest.param(None, None, None, 2.0, None, id="nothing-at-all-the-pause-alone-holds"),
        pytest.param(None, None, 0.2, None, Learned(MIN_PACE, T0, 30.0), id="never-below-the-minimum"),
    ],
)
def test_a_429_cuts_the_pace_to_what_the_api_accepted(
    learned: Learned | None, pace: float | None, measured: float | None, retry_after: float | None, expected: Learned | None,
) -> None:
    assert cut(learned, pace, measured, retry_after, T0) == expected


@pytest.mark.parametrize(
    ("learned", "now", "same"),
    [
        pytest.param(None, T0, False, id="nothing-learned-yet"),
        pytest.param(LEARNED, T0 - 1, True, id="during-the-pause-of-the-last-cut"),
        pytest.param(LEARNED, T0 + 1, False, id="after-that-pause-a-new-lesson"),
    ],
)
def test_429s_of_one_burst_teach_once(learned: Learned | None, now: float, same: bool) -> None:
    assert same_burst(learned, now) is same
