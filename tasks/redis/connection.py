"""Redis connections, and the patience of the producer and the ``payq`` commands for an unreachable server.

With a ``sentinel://`` URL the client asks the Sentinels for the primary
(``redis.sentinel``) whenever it connects, so after a failover its next
connection goes to the new primary; a connection to a primary demoted to a
replica is dropped on its first refused write (redis-py's Sentinel pool turns
that ``READONLY`` into a ``ConnectionError``), and the retry finds the new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

from config.redis_address import parse_sentinel, sentinel_client_options
from config.settings import Settings, redact_url
from payapi.errors import BrokerUnavailable, RedisFull
from tasks.redis.patience import Patience
from tasks.redis.replicas import Replicas

T = TypeVar("T")
CLIENT_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 10.0, "health_check_interval": 30, "decode_responses": True}


def sentinel_options(settings: Settings) -> tuple[list[tuple[str, int]], dict[str, object], dict[str, Any]]:
    """For ``redis.sentinel.Sentinel`` (sync or async): the Sentinels, their own connection options, and the primary's."""
    address = parse_sentinel(settings.redis_url)
    password = settings.redis_sentinel_password
    sentinel_kwargs = sentinel_client_options(password.get_secret_value() if password is not None else None)
    return list(address.sentinels), sentinel_kwargs, {"db": address.db, "password": address.password}


def connect(settings: Settings) -> redis.Redis:
    """A client for ``settings.redis_url`` (or the primary its Sentinels name); connections are made lazily, on first use."""
    if settings.uses_sentinel:
        sentinels, sentinel_kwargs, primary = sentinel_options(settings)
        manager = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        client: redis.Redis = manager.master_for(str(settings.redis_sentinel_master), **primary, **CLIENT_OPTIONS)  # type: ignore[no-untyped-call]
        return client
    return redis.Redis.from_url(settings.redis_url, **CLIENT_OPTIONS)


def primary_address(client: redis.Redis) -> str:
    """``host:port`` of the server ``client`` writes to: the primary its Sentinels name now, or the one in its URL."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        host, port = pool.get_master_address()  # type: ignore[no-untyped-call]
        return f"{host}:{port}"
    options = pool.connection_kwargs
    return str(options["path"]) if "path" in options else f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"


def replicas(settings: Settings) -> Replicas:
    """The replicas a confirmed write waits for: those in sync now, at least ``PAYQ_REDIS_MIN_REPLICAS``."""
    return Replicas(settings.min_replicas, settings.redis_replicas_timeout, failover=settings.uses_sentinel)


def with_retry(settings: Settings, action: Callable[[], T]) -> T:
    """Run ``action`` with a patience of ``redis_retry_seconds`` (:class:`~tasks.redis.patience.Patience`), then raise :class:`BrokerUnavailable`.

    Only connection faults are waited out: a command Redis received and
    refused is not a reason to wait.
    """
    try:
        return Patience.of(settings.redis_retry_seconds).call(action)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BrokerUnavailable(f"cannot reach Redis at {redact_url(settings.redis_url)}: {exc}") from None
    except redis.OutOfMemoryError:
        raise RedisFull(FULL) from None


# What an enqueue refused by a full Redis says, wherever it is refused (the producer, `payq enqueue`, the HTTP intake)
FULL = ("Redis is full (its maxmemory is reached, with noeviction) and refuses writes: nothing was written. Send the same jobs"
        " again once an operator has made room (a larger maxmemory, or a shorter PAYQ_JOB_RETENTION_DAYS: docs/scaling.md)")
