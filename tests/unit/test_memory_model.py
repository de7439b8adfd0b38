"""Redis's memory as payq plans it (tasks/redis/memory.py): key kinds, a trip's cost, the projection and the warning, as tables."""

from __future__ import annotations

import pytest

from tasks.redis.memory import estimate_kinds, kind_of, mean_sizes, near_full_warning, projected, trip_cost, warning_from

MIB = 2**20


@pytest.mark.parametrize(("key", "kind"), [
    ("payq:job:capture:s1:t1", "job:capture"),
    ("payq:job:feedback:s1:t1:1700000000", "job:feedback"),
    ("payq:job:refund:5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a", "job:refund"),
    ("payq:job:capture:s1:t1:deferrals", "job:history"),
    ("payq:job:capture:s1:t1:replays", "job:history"),
    ("payq:trip:s1:t1", "trip"),
    ("payq:trip:s1:t1:held", "trip:held"),
    ("payq:dlq", "dlq"),
    ("payq:pace:capture:ok:17000000000", "pace"),
    ("payments.capture", "other"),
    ("_kombu.binding.payments.capture", "other"),
])
def test_a_key_s_kind_is_read_from_its_name(key: str, kind: str) -> None:
    assert kind_of(key) == kind


def test_keys_by_kind_scale_the_sample_s_shares_to_the_key_count() -> None:
    sample = ["payq:job:capture:s:1", "payq:job:feedback:s:1:2", "payq:trip:s:1", "payq:job:capture:s:2"]
    assert estimate_kinds(sample, 1000) == {"job:capture": 500, "job:feedback": 250, "trip": 250}
    assert estimate_kinds([], 1000) == {}


def test_a_trip_costs_its_two_records_and_its_books_once_the_sample_has_each() -> None:
    sizes = mean_sizes([("payq:job:capture:s:1", 300), ("payq:job:capture:s:2", 320), ("payq:job:feedback:s:1:2", 440),
                        ("payq:trip:s:1", 230)])
    assert sizes == {"job:capture": 310, "job:feedback": 440, "trip": 230}
    assert trip_cost(sizes) == (750, 230)
    assert trip_cost({"job:capture": 310, "trip": 230}) is None


@pytest.mark.parametrize(("rate", "records", "books", "job_days", "books_days", "expected"), [
    (1.0, 873, 239, 3, 8, 86400 * (3 * 873 + 8 * 239)),   # docs/scaling.md: 373 MiB at 1 trip/s
    (10.0, 873, 239, 3, 8, 864000 * 4531),
    (1.0, 873, 239, 30, 30, 86400 * 30 * 1112),            # the retention is a multiplier
    (0.0, 873, 239, 3, 8, 0),
])
def test_the_steady_state_is_trips_a_day_times_each_part_s_retention(
    rate: float, records: float, books: float, job_days: float, books_days: float, expected: float,
) -> None:
    assert projected(rate, records, books, job_days, books_days) == pytest.approx(expected)


@pytest.mark.parametrize(("used", "maxmemory", "warns"), [
    (100 * MIB, 0, False),          # no limit: nothing to warn of here
    (79 * MIB, 100 * MIB, False),
    (80 * MIB, 100 * MIB, True),
    (101 * MIB, 100 * MIB, True),
])
def test_a_warning_from_80_percent_of_maxmemory_names_the_fill_and_what_makes_room(used: int, maxmemory: int, warns: bool) -> None:
    warning = near_full_warning(used, maxmemory, "noeviction")
    assert (warning is not None) == warns
    if warning is not None:
        assert f"{used / maxmemory:.0%} full" in warning and "maxmemory" in warning and "PAYQ_JOB_RETENTION_DAYS" in warning
    assert warning_from({"used_memory": used, "maxmemory": maxmemory, "maxmemory_policy": "noeviction"}) == warning
