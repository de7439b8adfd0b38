"""With Redis unreachable, enqueueing fails after a short bounded retry with a clear error, and reports no job id."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from config.settings import Settings
from payapi.errors import BrokerUnavailable
from tasks.producer import Producer
from tests.support.jobs import USD_1
from tests.support.payq_cli import PayqRunner
from tests.support.ports import free_port

RETRY_SECONDS = 0.5


@pytest.fixture
def closed_url() -> str:
    """A Redis URL on a port nothing listens on."""
    return f"redis://127.0.0.1:{free_port()}/0"


def test_cli_exits_1_with_one_line_naming_redis(payq: PayqRunner, closed_url: str) -> None:
    result = payq("enqueue", "capture", "--store-id", "s1", "--trip-id", "t1", "--amount", "1.00", "--currency", "USD",
                  env={"PAYQ_REDIS_URL": closed_url, "PAYQ_REDIS_RETRY_SECONDS": str(RETRY_SECONDS)})

    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot reach Redis at ")
    assert closed_url in line


def test_cli_job_file_exits_1_and_prints_no_ids(payq: PayqRunner, closed_url: str, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"operation": "cancel", "storeId": "s1", "shoppingTripId": "t1"}\n')

    result = payq("enqueue", "--file", str(jobs), env={"PAYQ_REDIS_URL": closed_url})

    assert result.returncode == 1
    assert result.stdout == ""
    assert "cannot reach Redis" in result.stderr


def test_python_api_raises_broker_unavailable_within_the_retry_window(closed_url: str) -> None:
    producer = Producer(Settings(redis_url=closed_url, redis_retry_seconds=RETRY_SECONDS))

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="cannot reach Redis"):
        producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    elapsed = time.monotonic() - started

    assert 0.1 <= elapsed < RETRY_SECONDS + 2.5  # it waited to try again, and not for long
