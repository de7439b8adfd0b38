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

No unacknowledged set in Redis: payq's channels run kombu with its ack
emulation off, so a delivered message lives only in the worker's memory until
it is acknowledged. kombu's emulation wrote each message to a hash and an
index on receipt and took it out again on acknowledgement: two transactions
per job, about a fifth of a worker's CPU and more than a third of Redis's
(measured: 714/748 → 859/900 jobs/s at 0 ms). What it protected is protected
otherwise: a running job's lease gives it back about a lease after its
holder died (``tasks.store.leases``), and a job whose message vanished before it
began (fetched by a worker killed in the milliseconds before BEGIN) is
published again by the lost-message sweep (``revive_lost``, within
``config.celery.lost_after``). Nothing waits for a visibility timeout.

Its :class:`QoS` puts the messages a closing channel still holds back on
their queues, and waits out a Redis outage to do so (up to
:data:`RESTORE_PATIENCE`) instead of dropping them. A copy of a job still
running calls nothing while the job's lease stands; a copy of a finished one
finds it finished.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import kombu.transport
import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps
from redis.sentinel import Sentinel

log = logging.getLogger("payq.transport")
RESTORE_PATIENCE = 30.0  # seconds a closing channel waits for Redis to put its delivered messages back


class QoS(virtual.QoS):  # type: ignore[misc,unused-ignore]
    """kombu's in-memory QoS, whose restore of delivered messages waits out a Redis outage instead of dropping them."""

    def restore_unacked(self) -> list[Any]:
        """Put every delivered, unacknowledged message back on its queue (the channel is closing); [] (kombu's errors)."""
        self._flush()  # type: ignore[no-untyped-call]
        delivered = self._delivered
        deadline = time.monotonic() + RESTORE_PATIENCE
        while delivered:
            tag, message = next(iter(delivered.items()))
            try:
                self.channel.put_back(message)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() > deadline:
                    # their jobs are running (their leases cover them) or queued (the lost-message sweep publishes them again)
                    log.warning("could not put %d delivered messages back (%s)", len(delivered), exc)
                    break
                time.sleep(0.5)  # Redis is away; try again
                continue
            except Exception:
                log.exception("could not put a delivered message back")
            delivered.pop(tag, None)
        delivered.clear()
        return []


class _PayqChannel:
    """What payq changes in kombu's channels (mixed into its Redis and Sentinel channels): no unacked set, one client per pool."""

    # kombu's Redis channel replaces its QoS class when ack emulation is off: payq's is set again after it
    ack_emulation = False
    _payq_client: Any = None
    _payq_params: dict[str, Any] | None = None
    _payq_spare: redis.Redis | None = None
    pool: Any
    connection: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.QoS = QoS
        # kept for a restore after the channel lost its connection (see QoS)
        self._payq_params = self._connparams()

    def put_back(self, message: Any) -> None:
        """Put a delivered ``message`` back at the end of its queue, as kombu's restore does; through a spare client once the channel is closed."""
        if self.connection is not None and self.connection.client is not None:
            self._restore(message)  # type: ignore[attr-defined]
            return
        # payq's queues are bound by their own name: the routing key is the queue
        payload = message.serializable()
        payload["redelivered"] = True
        if self._payq_spare is None:  # one for every message a closing channel puts back
            self._payq_spare = self.spare_client()
        self._payq_spare.lpush(message.delivery_info["routing_key"], dumps(payload))  # type: ignore[no-untyped-call]

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
