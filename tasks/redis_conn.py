"""Redis connections with a short, bounded patience for an unreachable server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

from config.settings import Settings, redact_url
from payapi.errors import BrokerUnavailable

T = TypeVar("T")


def connect(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis_url``; connections are made lazily, on first use."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        health_check_interval=30,
        decode_responses=True,
    )


def with_retry(settings: Settings, action: Callable[[], T]) -> T:
    """Run ``action``; on a connection fault retry for ``redis_retry_seconds``, then raise :class:`BrokerUnavailable`.

    Only connection faults are retried: a command Redis received and refused is
    not a reason to wait.
    """
    deadline = time.monotonic() + settings.redis_retry_seconds
    delay = 0.1
    while True:
        try:
            return action()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if time.monotonic() + delay > deadline:
                raise BrokerUnavailable(f"cannot reach Redis at {redact_url(settings.redis_url)}: {exc}") from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
