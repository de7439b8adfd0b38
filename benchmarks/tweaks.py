"""Measured what-ifs: Celery settings and code changes applied inside a benchmark worker only.

``celery -A benchmarks.variant worker`` runs payq's app with the tweaks named
in ``BENCH_TWEAKS`` (comma-separated); nothing here changes payq for anyone
else. Each tweak is a candidate for payq's own code or configuration, and the
benchmark's "profile" section reports what each one buys.
"""

from __future__ import annotations

import kombu.transport
from celery import Celery
from kombu.transport import redis as kombu_redis

from workers import fetch
from workers.redis_transport import ClientReuse

TWEAKS: dict[str, str] = {
    "events-on": "worker_send_task_events=True: task events as when Flower watches (its --enable-events; off by default)",
    "prefetch-4": "worker_prefetch_multiplier=4",
    "kombu-client-reuse": "kombu's Redis channel reuses one redis.Redis per channel instead of building one per ack/event (~100 µs each)",
    "fetch-one": "payq's fetch takes one message a round trip, not as many as the worker has threads free (issue 29: what several save)",
}


def apply(app: Celery, names: list[str]) -> None:
    """Apply the named tweaks to ``app`` (and to the libraries, in this process only)."""
    unknown = sorted(set(names) - set(TWEAKS))
    if unknown:
        raise ValueError(f"unknown tweak(s): {', '.join(unknown)}; known: {', '.join(TWEAKS)}")
    if "events-on" in names:
        app.conf.worker_send_task_events = True
    if "prefetch-4" in names:
        app.conf.worker_prefetch_multiplier = 4
    if "kombu-client-reuse" in names:
        reuse_kombu_clients()
    if "fetch-one" in names:
        fetch.QoS.can_consume_max_estimate = lambda self: 1  # type: ignore[method-assign]


class ReuseChannel(ClientReuse, kombu_redis.Channel):
    """kombu's Redis channel with payq's client reuse and kombu's ack emulation off, as payq ran it before its own fetch."""

    ack_emulation = False


class ReuseTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`ReuseChannel`."""

    Channel = ReuseChannel


def reuse_kombu_clients() -> None:
    """Give this process kombu's Redis transport with payq's client reuse (one ``redis.Redis`` per pool, not one per ack and event).

    Only that: payq's own fetch (``workers/fetch.py``) needs a payq worker's runtime, which a bare Celery app has not.
    """
    kombu.transport.TRANSPORT_ALIASES["redis"] = f"{__name__}:ReuseTransport"
    kombu.transport._transport_cache.pop("redis", None)
