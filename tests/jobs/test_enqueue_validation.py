"""An invalid job is refused at enqueue, naming each bad field, and Redis is left exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from payapi.errors import InvalidRequest
from tasks.producer import Producer
from tests.support.jobs import USD_1
from tests.support.payq_cli import PayqRunner


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A binary client, for DUMPing values."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def snapshot(raw: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key with its serialized value: equal snapshots mean nothing was written."""
    return {key: raw.dump(key) for key in sorted(raw.keys("*"))}


@pytest.fixture
def before(producer: Producer, raw: redis.Redis) -> dict[bytes, bytes | None]:
    """Redis holding one valid job, so "unchanged" is about more than an empty database."""
    producer.enqueue_capture(storeId="s1", shoppingTripId="earlier", amount=USD_1)
    taken = snapshot(raw)
    assert taken
    return taken


def test_python_api_refuses_an_invalid_job_and_writes_nothing(
    producer: Producer, raw: redis.Redis, before: dict[bytes, bytes | None],
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        producer.enqueue_capture(storeId="bad store", shoppingTripId="t1", amount={"amount": "1.234", "code": "usd"})

    assert {p.field for p in refused.value.problems} == {"storeId", "amount.amount", "amount.code"}
    assert snapshot(raw) == before


def test_python_api_refuses_a_refund_with_an_unknown_reason_and_writes_nothing(
    producer: Producer, raw: redis.Redis, before: dict[bytes, bytes | None],
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        producer.enqueue_refund(storeId="s1", shoppingTripId="t1", amount=USD_1, refundReasonCode="CHANGED_MIND")

    assert [p.field for p in refused.value.problems] == ["refundReasonCode"]
    assert snapshot(raw) == before


def test_cli_exits_2_naming_the_bad_amount_and_writes_nothing(
    payq: PayqRunner, raw: redis.Redis, before: dict[bytes, bytes | None],
) -> None:
    result = payq("enqueue", "capture", "--store-id", "s1", "--trip-id", "t1", "--amount", "1.234", "--currency", "USD")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "amount.amount" in result.stderr
    assert "2 decimal places" in result.stderr
    assert snapshot(raw) == before


def test_cli_file_with_invalid_lines_lists_every_error_by_line_and_enqueues_nothing(
    payq: PayqRunner, raw: redis.Redis, before: dict[bytes, bytes | None], tmp_path: Path,
) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join([
        '{"operation": "capture", "storeId": "s1", "shoppingTripId": "ok", "amount": {"amount": "1.00", "code": "USD"}}',
        '{"operation": "capture", "storeId": "s1", "shoppingTripId": "t2", "amount": {"amount": "1.234", "code": "USD"}}',
        '{"operation": "teleport", "storeId": "s1", "shoppingTripId": "t3"}',
        "not json at all",
        '{"operation": "refund", "storeId": "s1", "shoppingTripId": "t5", "refundReasonCode": "CHANGED_MIND"}',
    ]) + "\n")

    result = payq("enqueue", "--file", str(jobs))

    assert result.returncode == 2
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("invalid: ")]
    assert [e.split(":")[1].strip() for e in errors] == ["line 2", "line 3", "line 4", "line 5", "line 5"]
    assert "line 2: amount.amount" in result.stderr
    assert "line 3: operation" in result.stderr
    assert "line 5: amount" in result.stderr
    assert "line 5: refundReasonCode" in result.stderr
    assert "nothing enqueued" in result.stderr
    assert snapshot(raw) == before
