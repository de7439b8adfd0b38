"""Fixtures for the job tests: a Redis client for assertions and the real ``payq`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

PAYQ = Path(sys.executable).with_name("payq")
PayqRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def rdb(redis_url: str) -> Iterator[redis.Redis]:
    """A decoding client on the test's private, flushed Redis."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def payq(redis_url: str, tmp_path: Path) -> PayqRunner:
    """Run the installed ``payq`` console script against the private Redis.

    It runs in an empty directory, so no ``.env`` is read, and without any
    ``PAYQ_*`` variables of the calling environment; ``env`` adds some.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}

    def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PAYQ), *args], input=stdin, capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
            env={**base, "PAYQ_REDIS_URL": redis_url, "PAYQ_REDIS_RETRY_SECONDS": "0.5", **(env or {})},
        )

    return run
