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
"""

from __future__ import annotations

from typing import Any

import kombu.transport
import redis
from celery.worker import state as worker_state
from kombu.transport import redis as kombu_redis


class _OneClientPerPool:
    """Reuse the synchronous client while the pool is the same, and close safely after a lost connection (mixed into kombu's channels)."""

    _payq_client: Any = None
    pool: Any
    connection: Any
    qos: Any

    def close(self) -> None:
        """Close, leaving the messages this channel delivered where they are unless the worker is shutting down.

        Celery closes its channels when the broker connection is lost (a Redis
        restart, a Sentinel failover) but lets the jobs it received run on; and
        kombu, closing a channel, puts every message it delivered and has not
        seen acknowledged back on its queue (at once, or on a later close once
        Redis answers again), where another worker would run it a second time
        beside this one. They stay in the unacknowledged index instead:
        acknowledged when their job ends, or handed back after the visibility
        timeout if this worker dies first. Only while the worker is shutting
        down does kombu put them back (their jobs are over or stopping).
        """
        if not (worker_state.should_stop or worker_state.should_terminate):
            self.qos._delivered.clear()
        super().close()  # type: ignore[misc]

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            # the channel or its broker connection was closed (after a connection error Celery closes both, while
            # jobs still run and will acknowledge through it): say so as a connection error, which kombu and Celery
            # log and get past (the message is handed back after the visibility timeout, and finds its job done);
            # an AttributeError here stops the worker
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


class Channel(_OneClientPerPool, kombu_redis.Channel):  # type: ignore[misc,unused-ignore]
    """kombu's Redis channel, reusing its synchronous client."""


class Transport(kombu_redis.Transport):  # type: ignore[misc,unused-ignore]
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


class SentinelChannel(_OneClientPerPool, kombu_redis.SentinelChannel):  # type: ignore[misc,unused-ignore]
    """kombu's Sentinel channel (its pool connects to the primary the Sentinels name), reusing its synchronous client."""


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
