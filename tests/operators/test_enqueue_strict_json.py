"""``payq enqueue --file``: a line that repeats a key exits 2 naming the line and the key, and nothing of the file is enqueued."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from payapi.wire import REPEATED_KEY
from payq.exits import EXIT_INVALID
from tests.support.payq_cli import Ran

VALID = '{"operation": "cancel", "storeId": "s1", "shoppingTripId": "before"}'


@pytest.mark.parametrize(("line", "key"), [
    pytest.param('{"operation": "capture", "storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "1.00", "amount": "999.00", "code": "USD"}}',
                 "amount.amount", id="amount.amount"),
    pytest.param('{"operation": "capture", "storeId": "s1", "storeId": "s2", "shoppingTripId": "t1", "amount": {"amount": "1.00", "code": "USD"}}',
                 "storeId", id="storeId"),
    pytest.param('{"operation": "cancel", "storeId": "s1", "shoppingTripId": "t1", "operation": "capture", "amount": {"amount": "1.00", "code": "USD"}}',
                 "operation", id="operation"),
])
def test_a_file_line_that_repeats_a_key_exits_2_naming_it_and_enqueues_nothing(
    payq: Callable[..., Ran], redis_url: str, tmp_path: Path, line: str, key: str,
) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(f"{VALID}\n{line}\n")

    ran = payq("enqueue", "--file", str(jobs))

    assert ran.code == EXIT_INVALID
    assert ran.stdout == ""
    assert ran.stderr.splitlines() == [f"invalid: line 2: {key}: {REPEATED_KEY}", "1 problem(s); nothing enqueued"]
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0, "not even the valid line before it"
