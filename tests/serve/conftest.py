"""Fixtures for the intake tests: one real ``payq serve`` per test process, on the private Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.serve.helpers import serve_env
from tests.support.redis_server import RedisServer
from tests.support.serve import ServeProcess


@pytest.fixture(scope="session")
def serve_process(redis_server: RedisServer) -> Iterator[ServeProcess]:
    """``payq serve`` with the two stores' tokens, for the whole test process (each test flushes Redis through ``serve``)."""
    with ServeProcess(redis_server.url, env=serve_env()) as process:
        yield process


@pytest.fixture
def serve(serve_process: ServeProcess, redis_url: str) -> ServeProcess:
    """The running ``payq serve``, its Redis emptied for this test."""
    return serve_process


@pytest.fixture
def rdb(redis_url: str) -> Iterator[redis.Redis]:
    """A decoding client on the test's private, flushed Redis."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
