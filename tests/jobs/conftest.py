"""Fixtures for the job tests: a Redis client for assertions and the real ``payq`` command."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
import redis

from tests.support.payq_cli import PayqRunner, run_payq


@pytest.fixture
def rdb(redis_url: str) -> Iterator[redis.Redis]:
    """A decoding client on the test's private, flushed Redis."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def payq(redis_url: str) -> PayqRunner:
    """Run the installed ``payq`` console script against the private Redis (see :func:`run_payq`)."""

    def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run_payq(redis_url, *args, env=env, stdin=stdin, timeout=timeout, retry_seconds=0.5)

    return run
