"""Measured what-ifs: Celery settings and code changes applied inside a benchmark worker only.

``celery -A benchmarks.variant worker`` runs payq's app with the tweaks named
in ``BENCH_TWEAKS`` (comma-separated); nothing here changes payq for anyone
else. Each tweak is a candidate for payq's own code or configuration, and the
benchmark's "profile" section reports what each one buys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from celery import Celery

TWEAKS: dict[str, str] = {
    "events-off": "worker_send_task_events=False (Flower re-enables events while it runs)",
    "prefetch-4": "worker_prefetch_multiplier=4",
    "kombu-client-reuse": "kombu's Redis channel reuses one redis.Redis per channel instead of building one per ack/event (~100 µs each)",
    "kombu-transport": "the same as kombu-client-reuse, as payq would adopt it: broker_transport = benchmarks.kombu_transport:Transport",
    "one-trip-finish": "a capture's settle + report enqueue + succeed in one Redis round trip (a Lua script) instead of three",
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
    if "kombu-transport" in names:
        app.conf.broker_transport = "benchmarks.kombu_transport:Transport"
    if "one-trip-finish" in names:
        one_trip_finish()
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


_FINISH_CAPTURE = """
-- KEYS: capture job, report job, feedback queue; ARGV: settled_at, now, report message, kwargs, ttl, events channel, sent event, result
if redis.call('HSETNX', KEYS[1], 'settled_at', ARGV[1]) == 0 then
  return redis.call('HGET', KEYS[1], 'settled_at')
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'op', 'feedback', 'kwargs', ARGV[4], 'state', 'queued', 'attempts', 0,
             'enqueued_at', ARGV[2], 'updated_at', ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('LPUSH', KEYS[3], ARGV[3])
  redis.call('PUBLISH', ARGV[6], ARGV[7])
end
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'outcome', 'HTTP 200', 'result', ARGV[8], 'updated_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'deferred_until', 'reason')
return 0
"""


def one_trip_finish() -> None:
    """A capture's settle, report enqueue and success in one Lua script: one Redis round trip instead of three.

    The report's paymentStatusTime is the settle time, so the script only
    enqueues it when this call is the one that settles; a redelivery (already
    settled) falls back to the original path with the first settle time.
    """
    from tasks import execution
    from tasks.messages import QUEUES, build_message, build_sent_event
    from tasks.producer import prepare
    from workers import keys

    original_apply = execution._apply
    original_after_capture = execution._after_capture
    scripts: dict[int, Any] = {}

    def finish(rt: Any, job_id: str, request: Any, now: float) -> dict[str, Any]:
        script = scripts.get(id(rt.redis))
        if script is None:
            script = scripts[id(rt.redis)] = rt.redis.register_script(_FINISH_CAPTURE)
        settled_at = int(now)
        amount = request.amount.model_dump()
        report = prepare("feedback", {
            "storeId": request.storeId, "shoppingTripId": request.shoppingTripId,
            "totalAmount": amount, "settledAmount": amount, "paymentStatusTime": settled_at,
        })
        result = {"reportJobId": report.job_id, "settledAt": settled_at}
        earlier = script(
            keys=[keys.job(job_id), keys.job(report.job_id), QUEUES["feedback"]],
            args=[settled_at, now, build_message("feedback", report.job_id, report.kwargs), json.dumps(report.kwargs),
                  rt.jobs._ttl, rt.jobs._events, build_sent_event("feedback", report.job_id, report.kwargs, now), json.dumps(result)],
        )
        if earlier not in (0, "0"):
            return original_after_capture(rt, job_id, request, int(earlier), now)
        return result

    def _apply(rt: Any, operation: Any, job_id: str, kwargs: Any, request: Any, outcome: Any, attempts: int, worker: str) -> Any:
        from payapi.models import CaptureRequest
        from payapi.outcomes import Success

        if isinstance(outcome, Success) and isinstance(request, CaptureRequest):
            import time

            return finish(rt, job_id, request, time.time())
        return original_apply(rt, operation, job_id, kwargs, request, outcome, attempts, worker)

    setattr(execution, "_apply", _apply)  # noqa: B010 - a what-if patch, this process only
