"""Measured what-ifs: Celery settings and code changes applied inside a benchmark worker only.

``celery -A benchmarks.variant worker`` runs payq's app with the tweaks named
in ``BENCH_TWEAKS`` (comma-separated); nothing here changes payq for anyone
else. Each tweak is a candidate for payq's own code or configuration, and the
benchmark's "profile" section reports what each one buys.
"""

from __future__ import annotations

from celery import Celery

TWEAKS: dict[str, str] = {
    "events-on": "worker_send_task_events=True: task events as when Flower watches (its --enable-events; off by default)",
    "prefetch-4": "worker_prefetch_multiplier=4",
    "kombu-client-reuse": "kombu's Redis channel reuses one redis.Redis per channel instead of building one per ack/event (~100 µs each)",
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


def reuse_kombu_clients() -> None:
    """Give this process payq's kombu transport, which builds one ``redis.Redis`` per pool, not one per ack and event."""
    from workers import redis_transport

    redis_transport.install()
