"""``parse_retry_after``: seconds or an HTTP-date, ``None`` when unusable; and the policy's clamp to the configured window.

``None`` is the signal to fall back to exponential backoff, so every value the
function cannot read with certainty must give ``None`` rather than a guess.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payapi.outcomes import parse_retry_after
from tasks.jobs.decide import RetryPolicy

POLICY = RetryPolicy(retry_after_floor=1.0, retry_after_cap=900.0)
# Spelled out rather than strftime's %a/%b, which follow the locale.
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
NOW_DT = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
NOW = NOW_DT.timestamp()


def at(seconds_from_now: float) -> datetime:
    return NOW_DT + timedelta(seconds=seconds_from_now)


def imf_fixdate(seconds_from_now: float) -> str:
    """The preferred HTTP-date form: ``Wed, 01 Jan 2025 12:02:00 GMT``."""
    return format_datetime(at(seconds_from_now), usegmt=True)


def rfc850_date(seconds_from_now: float) -> str:
    """The obsolete RFC 850 HTTP-date form: ``Wednesday, 01-Jan-25 12:02:00 GMT``."""
    d = at(seconds_from_now)
    return f"{DAYS[d.weekday()]}, {d.day:02}-{MONTHS[d.month - 1]}-{d.year % 100:02} {d:%H:%M:%S} GMT"


def asctime_date(seconds_from_now: float) -> str:
    """The obsolete asctime HTTP-date form, which has no zone but is GMT by definition: ``Wed Jan  1 12:02:00 2025``."""
    d = at(seconds_from_now)
    return f"{DAYS[d.weekday()][:3]} {MONTHS[d.month - 1]} {d.day:>2} {d:%H:%M:%S} {d.year}"


def parse(value: str | None) -> float | None:
    return parse_retry_after(value, NOW)


def clamped(value: str, policy: RetryPolicy = POLICY) -> float | None:
    """What the retry decision waits for a Retry-After of ``value``."""
    seconds = parse(value)
    return None if seconds is None else policy.clamp(seconds)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("120", 120.0, id="integer-seconds"),
        pytest.param("600", 600.0, id="documented-600-is-seconds"),
        pytest.param("2.5", 2.5, id="decimal-seconds"),
        pytest.param("  30  ", 30.0, id="surrounding-whitespace"),
        pytest.param("\t45\r\n", 45.0, id="tabs-and-line-ending"),
        pytest.param(imf_fixdate(120), 120.0, id="http-date-in-the-future"),
        pytest.param(imf_fixdate(0.0), 0.0, id="http-date-now-means-now"),
        pytest.param(imf_fixdate(-86400), 0.0, id="http-date-in-the-past-means-now"),
        pytest.param(rfc850_date(300), 300.0, id="http-date-rfc850-form"),
        pytest.param("Wed, 01 Jan 2025 14:02:00 +0200", 120.0, id="date-with-numeric-offset"),
    ],
)
def test_a_readable_value_gives_the_delay_in_seconds(value: str, seconds: float) -> None:
    assert parse(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("soon", id="garbage-word"),
        pytest.param("10 seconds", id="number-with-unit"),
        pytest.param("0x1e", id="hex"),
        pytest.param("-5", id="negative-seconds"),
        pytest.param("-0.5", id="negative-decimal-seconds"),
        pytest.param("inf", id="infinity"),
        pytest.param("-inf", id="negative-infinity"),
        pytest.param("nan", id="nan"),
        pytest.param("1e400", id="overflows-to-infinity"),
        pytest.param("Wed, 01 Jan 2025 12:02:00", id="zoneless-date"),
        pytest.param("Wed, 01 Jan 2025 12:02:00 -0000", id="date-with-unknown-zone-minus-0000"),
        pytest.param("Wed, 41 Foo 2025 12:02:00 GMT", id="impossible-date"),
        pytest.param("Wed, 01 Jan 99999 12:02:00 GMT", id="year-out-of-range"),
    ],
)
def test_an_unusable_value_gives_none_so_the_caller_backs_off(value: str | None) -> None:
    assert parse(value) is None


def test_the_asctime_http_date_form_is_read_as_gmt() -> None:
    assert parse(asctime_date(120)) == 120.0


@pytest.mark.parametrize(
    ("value", "policy", "seconds"),
    [
        pytest.param("0", POLICY, 1.0, id="zero-raised-to-floor"),
        pytest.param("0.2", POLICY, 1.0, id="below-floor-raised-to-floor"),
        pytest.param("1", POLICY, 1.0, id="at-floor-kept"),
        pytest.param("900", POLICY, 900.0, id="at-cap-kept"),
        pytest.param("901", POLICY, 900.0, id="above-cap-lowered-to-cap"),
        pytest.param("31536000", POLICY, 900.0, id="a-year-lowered-to-cap"),
        pytest.param(imf_fixdate(7 * 86400), POLICY, 900.0, id="far-future-date-lowered-to-cap"),
        pytest.param(imf_fixdate(-3600), POLICY, 1.0, id="past-date-raised-to-floor"),
        pytest.param("600", RetryPolicy(retry_after_floor=5.0, retry_after_cap=60.0), 60.0, id="custom-cap"),
        pytest.param("2", RetryPolicy(retry_after_floor=5.0, retry_after_cap=60.0), 5.0, id="custom-floor"),
        pytest.param("0", RetryPolicy(retry_after_floor=0.0, retry_after_cap=60.0), 0.0, id="zero-floor-allows-immediate"),
    ],
)
def test_the_delay_is_clamped_to_floor_and_cap(value: str, policy: RetryPolicy, seconds: float) -> None:
    assert clamped(value, policy) == seconds


def test_an_http_date_is_measured_from_the_injected_clock_not_the_real_one() -> None:
    value = imf_fixdate(60)

    assert parse_retry_after(value, NOW) == 60.0
    assert parse_retry_after(value, NOW - 100) == 160.0
    assert parse_retry_after(value, NOW + 3600) == 0.0


@given(
    seconds=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
    floor=st.floats(min_value=0, max_value=60),
    span=st.floats(min_value=0, max_value=3600),
)
def test_any_non_negative_delay_lands_inside_the_window(seconds: float, floor: float, span: float) -> None:
    policy = RetryPolicy(retry_after_floor=floor, retry_after_cap=floor + span)

    result = clamped(repr(seconds), policy)

    assert result is not None
    assert math.isfinite(result)
    assert policy.retry_after_floor <= result <= policy.retry_after_cap
    if policy.retry_after_floor <= seconds <= policy.retry_after_cap:
        assert result == seconds


@given(st.text(max_size=40))
def test_any_text_gives_none_or_a_finite_non_negative_delay(value: str) -> None:
    result = parse(value)

    assert result is None or (math.isfinite(result) and result >= 0)
