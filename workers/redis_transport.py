"""payq's Redis transport: kombu's, with one ``redis.Redis`` per connection pool instead of one per operation.

kombu's Redis channel calls ``_create_client()`` for every acknowledgement,
every unacked-index write, every event and every publish outside a pipeline,
and with redis-py 8 each ``redis.Redis(connection_pool=...)`` costs ~100 µs
(it copies ~200 response callbacks into a case-insensitive dict): in a payq
worker that was 9-14% of its CPU. A ``redis.Redis`` is thread-safe (each
command takes a connection from the pool and gives it back), so one per pool
is enough; when kombu replaces the pool (reconnect, fork) the next call builds
a client for the new one.

:func:`install` makes ``redis://``, ``rediss://`` and ``sentinel://`` URLs use it in this
process (``workers/app.py`` calls it). Measured with the benchmark: 12-21%
less worker CPU per job.

Its channels own the fetch (:mod:`workers.fetch`): every message a worker
takes is moved, atomically, into an in-flight list of its own in Redis, where
it stays until it is settled; nothing waits for a visibility timeout, and no
message is ever only in a worker's memory.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import kombu.transport
import redis
from kombu.transport import redis as kombu_redis
from redis.sentinel import Sentinel

from workers.fetch import Fetcher, OwnedFetch


class ClientReuse:
    """kombu's Redis channel with one synchronous client per pool (mixed in ahead of it), and a spare client for a closed one."""

    _payq_client: Any = None
    _payq_params: dict[str, Any] | None = None
    pool: Any
    connection: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kept for a client once the channel lost its connection (a closing channel settles what it held)
        self._payq_params = self._connparams()

    def spare_client(self) -> redis.Redis:
        """A client of the channel's own Redis that does not need the channel's connection."""
        assert self._payq_params is not None
        return redis.Redis(connection_pool=redis.ConnectionPool(**self._payq_params))

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            # the channel or its broker connection was closed (after a connection error Celery closes both, while
            # jobs still run): say so as a connection error, which kombu and Celery log and get past (any
            # other error would stop the worker)
            raise redis.ConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous)  # type: ignore[misc]

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        client = self._payq_client
        if client is None or client.connection_pool is not pool:
            client = self._payq_client = super()._create_client()  # type: ignore[misc]
        return client


class Channel(OwnedFetch, ClientReuse, kombu_redis.Channel):  # type: ignore[misc,unused-ignore]
    """kombu's Redis channel, fetching into the worker's in-flight lists and reusing its synchronous client."""


class Transport(kombu_redis.Transport):  # type: ignore[misc,unused-ignore]
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


class SentinelChannel(OwnedFetch, ClientReuse, kombu_redis.SentinelChannel):  # type: ignore[misc,unused-ignore]
    """kombu's Sentinel channel (its pool connects to the primary the Sentinels name), as :class:`Channel`."""

    _payq_sentinels: list[tuple[str, int]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the spare client asks the same Sentinels: the channel's host and port are a Sentinel's, not Redis's
        addresses = [urlsplit(url) for url in self.connection.client.alt]
        self._payq_sentinels = [(str(url.hostname), url.port or 26379) for url in addresses if url.scheme == "sentinel"]

    def spare_client(self) -> redis.Redis:
        """A client of the primary the Sentinels name now, that does not need the channel's connection."""
        assert self._payq_params is not None and self._payq_sentinels
        params = self._payq_params
        manager = Sentinel(self._payq_sentinels, sentinel_kwargs=getattr(self, "sentinel_kwargs", None))  # type: ignore[no-untyped-call]
        client: redis.Redis = manager.master_for(getattr(self, "master_name", None), username=params.get("username"),  # type: ignore[no-untyped-call]
                                                 password=params.get("password"), db=params.get("db", 0))
        return client


class SentinelTransport(kombu_redis.SentinelTransport):  # type: ignore[misc,unused-ignore]
    """kombu's Sentinel transport with :class:`SentinelChannel`."""

    Channel = SentinelChannel


_TRANSPORTS = {"redis": "Transport", "rediss": "Transport", "sentinel": "SentinelTransport"}


def install(fetcher: Fetcher) -> None:
    """Make ``redis://`` and ``rediss://`` broker URLs use :class:`Transport`, ``sentinel://`` :class:`SentinelTransport`, in this process.

    Their channels fetch payq's queues for ``fetcher``, this process's worker.

    Through kombu's alias table, not Celery's ``broker_transport``: with that,
    kombu names the transport by its import path wherever it shows the broker
    URL (Celery's "Connected to" line, and Flower, which then no longer knows
    the broker is Redis and cannot show its queues).
    """
    OwnedFetch.fetcher = fetcher
    for scheme, transport in _TRANSPORTS.items():
        kombu.transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:{transport}"
        kombu.transport._transport_cache.pop(scheme, None)
