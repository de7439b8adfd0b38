"""Measured what-ifs: Celery settings and code changes applied inside a benchmark worker only.

``celery -A benchmarks.variant worker`` runs payq's app with the tweaks named
in ``BENCH_TWEAKS`` (comma-separated); nothing here changes payq for anyone
else. Each tweak is a candidate for payq's own code or configuration, and the
benchmark's "profile" section reports what each one buys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

TWEAKS: dict[str, str] = {
    "events-off": "worker_send_task_events=False (Flower re-enables events while it runs)",
    "prefetch-4": "worker_prefetch_multiplier=4",
    "kombu-client-reuse": "kombu's Redis channel reuses one redis.Redis per channel instead of building one per ack/event (~100 µs each)",
    "move-to-tail": "the mover LPUSHes a due job (behind the backlog), as before commit f1f9cd6, instead of RPUSH (next to run)",
}


def apply(app: Celery, names: list[str]) -> None:
    """Apply the named tweaks to ``app`` (and to the libraries, in this process only)."""
    unknown = sorted(set(names) - set(TWEAKS))
    if unknown:
        raise ValueError(f"unknown tweak(s): {', '.join(unknown)}; known: {', '.join(TWEAKS)}")
    if "events-off" in names:
        app.conf.worker_send_task_events = False
    if "prefetch-4" in names:
        app.conf.worker_prefetch_multiplier = 4
    if "kombu-client-reuse" in names:
        reuse_kombu_clients()
    if "move-to-tail" in names:
        from workers import jobs

        if "RPUSH" not in jobs._MOVE:
            raise RuntimeError("workers.jobs._MOVE changed: the move-to-tail tweak no longer applies")
        jobs._MOVE = jobs._MOVE.replace("RPUSH", "LPUSH")


def reuse_kombu_clients() -> None:
    """Make kombu's Redis channel build its synchronous ``redis.Redis`` once per connection pool.

    kombu calls ``Channel._create_client()`` for every ack, every event and
    every publish outside a pipeline; with redis-py 8 each ``redis.Redis()``
    costs ~100 µs (it copies ~200 response callbacks). ``redis.Redis`` is
    thread-safe (every command takes a connection from the pool), so one per
    pool is enough; a new pool (after a reconnect or a fork) gets a new client.
    """
    from kombu.transport import redis as kombu_redis

    original: Callable[..., Any] = kombu_redis.Channel._create_client
    if getattr(original, "_payq_reuse", False):
        return

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return original(self, asynchronous=True)
        pool = self.pool
        cached = self.__dict__.get("_payq_sync_client")
        if cached is None or cached.connection_pool is not pool:
            cached = original(self)
            self.__dict__["_payq_sync_client"] = cached
        return cached

    _create_client._payq_reuse = True  # type: ignore[attr-defined]
    setattr(kombu_redis.Channel, "_create_client", _create_client)  # noqa: B010 - a what-if patch, this process only
