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

Its :class:`QoS` also survives Redis going away. When the connection drops,
kombu closes the channel and puts the messages it had delivered back on their
queues; with Redis down that raised, or found the channel already without its
connection (``'NoneType' object has no attribute 'hostname'``), and the worker
exited ("Unrecoverable error") with jobs in hand. Now it waits for Redis (up to
:data:`RESTORE_PATIENCE`) with a client of its own. A message whose job has
finished meanwhile is no longer in kombu's unacked set (its outcome took it
out), so nothing comes back for it; a copy of a job still running calls
nothing while the job's lease stands.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import kombu.transport
import redis
from kombu.transport import redis as kombu_redis
from redis.sentinel import Sentinel

log = logging.getLogger("payq.transport")
RESTORE_PATIENCE = 30.0  # seconds a closing channel waits for Redis to put its delivered messages back


class QoS(kombu_redis.QoS):  # type: ignore[misc,unused-ignore]
    """kombu's Redis QoS, whose restore of delivered messages waits out a Redis outage instead of ending the worker."""

    def restore_unacked(self, client: Any = None) -> None:
        deadline = time.monotonic() + RESTORE_PATIENCE
        while True:
            try:
                if client is None and self.channel.connection is None:
                    client = self.channel.spare_client()
                super().restore_unacked(client)  # type: ignore[no-untyped-call]
                return
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() > deadline:
                    # left in the unacked set: their holders finish them, or kombu restores them after the visibility timeout
                    log.warning("could not put %d delivered messages back (%s)", len(self._delivered), exc)
                    return
                time.sleep(0.5)  # Redis is away; try again
            except Exception:
                log.exception("could not put %d delivered messages back", len(self._delivered))
                return


class _PayqChannel:
    """What payq changes in kombu's channels (mixed into its Redis and Sentinel channels): one client per pool, a spare client."""

    QoS = QoS
    _payq_client: Any = None
    _payq_params: dict[str, Any] | None = None
    pool: Any
    connection: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kept for a restore after the channel lost its connection (see QoS)
        self._payq_params = self._connparams()

    def spare_client(self) -> redis.Redis:
        """A client of the channel's own Redis that does not need the channel's connection."""
        assert self._payq_params is not None
        return redis.Redis(connection_pool=redis.ConnectionPool(**self._payq_params))

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            # the channel or its broker connection was closed (after a connection error Celery closes both, while
            # jobs still run and acknowledge through it): say so as a connection error, which kombu and Celery log
            # and get past (the message comes back after the visibility timeout and finds its job done); an
            # AttributeError here stopped the worker
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


class Channel(_PayqChannel, kombu_redis.Channel):  # type: ignore[misc,unused-ignore]
    """kombu's Redis channel, reusing its synchronous client."""


class Transport(kombu_redis.Transport):  # type: ignore[misc,unused-ignore]
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


class SentinelChannel(_PayqChannel, kombu_redis.SentinelChannel):  # type: ignore[misc,unused-ignore]
    """kombu's Sentinel channel (its pool connects to the primary the Sentinels name), reusing its synchronous client."""

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


def install() -> None:
    """Make ``redis://`` and ``rediss://`` broker URLs use :class:`Transport`, ``sentinel://`` :class:`SentinelTransport`, in this process.

    Through kombu's alias table, not Celery's ``broker_transport``: with that,
    kombu names the transport by its import path wherever it shows the broker
    URL (Celery's "Connected to" line, and Flower, which then no longer knows
    the broker is Redis and cannot show its queues).
    """
    for scheme, transport in _TRANSPORTS.items():
        kombu.transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:{transport}"
        kombu.transport._transport_cache.pop(scheme, None)
