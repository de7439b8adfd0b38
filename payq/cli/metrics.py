"""``payq metrics``: payq's own gauges in Prometheus text format, read from Redis on every scrape.

Flower exports task events, not what waits in Redis: queue depths, deferred
jobs, dead letters and endpoint pauses are only in payq's keys, so this small
server reads them with :func:`tasks.stats.collect` when Prometheus asks.

Timestamps are seconds since the epoch (Prometheus' convention), so
``payq_endpoint_paused_until_seconds > time()`` means "paused now" and
``time() - payq_deferred_next_due_seconds`` is how late the mover is.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from payapi.errors import BrokerUnavailable
from payapi.operations import API_OPERATIONS
from payq.exits import EXIT_FAULT, exits_cleanly, stores_from_env
from payq.views import retention_of
from tasks.redis.memory import Memory
from tasks.redis.replicas import ReplicaState
from tasks.states import DeadLetterReason
from tasks.stats import Stats, collect

log = logging.getLogger("payq.metrics")

# name -> help text; docs/operating.md's metrics table is this list (tests/stack/test_readme.py checks it)
METRICS: dict[str, str] = {
    "payq_queue_depth": "Jobs waiting on each queue (Redis list length).",
    "payq_queue_oldest_seconds": "When the job next in line on each queue became queued, epoch seconds; absent when the queue is empty.",
    "payq_unacked_jobs": "Jobs delivered and not yet acknowledged: running, each under its holder's lease (a dead worker's leave when its leases lapse).",
    "payq_deferred_jobs": "Jobs waiting in the deferred set until their retry is due.",
    "payq_deferred_next_due_seconds": "When the earliest deferred job is due, epoch seconds; absent when none is deferred.",
    "payq_deferred_overdue_seconds": "How far past its due time the earliest deferred job is (0 when none is overdue); growing means no worker runs the mover.",
    "payq_redis_replicas": "Replicas connected to Redis's primary.",
    "payq_redis_replicas_in_sync": "Replicas online and acknowledged within the last second: the ones every write payq reports waits for.",
    "payq_redis_min_replicas": "PAYQ_REDIS_MIN_REPLICAS: with fewer replicas in sync, enqueues are refused and workers take no jobs.",
    "payq_redis_degraded": "1 while payq goes on with Redis's primary alone (no replica in sync where one is expected, and"
                           " PAYQ_REDIS_MIN_REPLICAS 0): a failover now would lose what it acknowledged.",
    "payq_waiting_jobs": "Refunds held until their trip's capture succeeds (a capture that is dead-lettered keeps them waiting).",
    "payq_store_open_jobs": "Jobs each store has open (enqueued, not yet succeeded or dead-lettered); the busiest stores only.",
    "payq_store_calls_last_minute": "Calls each store's jobs began in the last minute, by operation.",
    "payq_store_call_share": "Each store's share (0 to 1) of an endpoint's calls in the last minute.",
    "payq_dead_letters": "Dead-letter entries waiting for an operator, by reason.",
    "payq_endpoint_paused_until_seconds": "End of each endpoint's shared 429 pause, epoch seconds; 0 or in the past when not paused.",
    "payq_endpoint_pace_per_second": "Calls per second each endpoint is paced at, all workers together (the lower of configured and learned); 0 when unpaced.",
    "payq_endpoint_pace_configured_per_second": "Calls per second PAYQ_RATE_LIMITS allows each endpoint; 0 when none is configured.",
    "payq_endpoint_pace_learned_per_second": "Calls per second each endpoint's 429s taught payq it may make now; 0 when nothing is learned.",
    "payq_outbox_events": "Outcome notifications in the outbox not yet delivered (nor dead-lettered), retries waiting included.",
    "payq_outbox_oldest_seconds": "When the oldest undelivered notification's outcome was recorded, epoch seconds; absent when the outbox is empty.",
    "payq_api_calls": "API calls made, by operation and HTTP status (none: no response); status 429 counts throttled calls.",
    "payq_workers_live": "Worker processes whose heartbeat is within a lease (PAYQ_LEASE_SECONDS).",
    "payq_workers_steady": "Live worker processes that have beaten without a break for a lease: only these give back a dead worker's jobs.",
    "payq_worker_starts": "Worker processes started, each counted at its first heartbeat.",
    "payq_worker_last_heartbeat_seconds": "Each live worker process's last heartbeat, epoch seconds (Redis's clock), by its id (host.pid.random).",
    "payq_jobs_recovered": "Running jobs given back to their queue because their holder's lease lapsed (it died, stopped or was cut off).",
    "payq_intake_answers": "The HTTP intake's answers to /v1 requests, by HTTP status, all payq serve processes together.",
    "payq_scrape_timestamp_seconds": "When this snapshot was read from Redis, epoch seconds.",
    "payq_redis_used_memory_bytes": "Redis's used_memory (INFO memory).",
    "payq_redis_maxmemory_bytes": "Redis's maxmemory; 0: no limit. With noeviction, every enqueue fails once used_memory reaches it.",
    "payq_redis_keys": "Redis's keys by kind (job:capture, job:feedback, trip, ...), estimated from a sample of random keys.",
    "payq_trip_bytes": "What a settled trip keeps in Redis (its capture's and report's records and its books), by MEMORY USAGE of sampled keys.",
    "payq_trips_per_second": "Captures succeeding per second now (the last 20 s).",
    "payq_redis_projected_memory_bytes": "Redis's memory at steady state with trips at the current rate, each kept"
                                         " PAYQ_JOB_RETENTION_DAYS (records) and PAYQ_TRIP_BOOKS_RETENTION_DAYS (books).",
}


class PayqCollector:
    """A Prometheus collector that takes a fresh :class:`Stats` snapshot on every scrape.

    ``snapshot`` raises (Redis down) rather than returning stale figures; the
    HTTP handler turns that into a 503 so Prometheus records the scrape as failed.
    """

    def __init__(self, snapshot: Callable[[], Stats]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not need Redis."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The gauges for one snapshot."""
        stats = self._snapshot()
        yield _labelled("payq_queue_depth", ["queue"], (((queue,), n) for queue, n in stats.queues.items()))
        yield _labelled("payq_queue_oldest_seconds", ["queue"], (((queue,), since) for queue, since in stats.queued_since.items()))
        yield GaugeMetricFamily("payq_unacked_jobs", METRICS["payq_unacked_jobs"], value=stats.unacked)
        yield GaugeMetricFamily("payq_deferred_jobs", METRICS["payq_deferred_jobs"], value=stats.deferred)
        next_due = GaugeMetricFamily("payq_deferred_next_due_seconds", METRICS["payq_deferred_next_due_seconds"])
        overdue = 0.0
        if stats.deferred_next_due is not None:
            next_due.add_metric([], stats.deferred_next_due)
            overdue = max(0.0, stats.taken_at - stats.deferred_next_due)
        yield next_due
        yield GaugeMetricFamily("payq_deferred_overdue_seconds", METRICS["payq_deferred_overdue_seconds"], value=overdue)
        yield GaugeMetricFamily("payq_waiting_jobs", METRICS["payq_waiting_jobs"], value=stats.waiting)
        yield _labelled("payq_store_open_jobs", ["store"], (((load.store,), load.open_jobs) for load in stats.stores))
        yield _labelled("payq_store_calls_last_minute", ["store", "operation"],
                        (((load.store, op_name), count) for load in stats.stores for op_name, count in load.calls.items()))
        yield _labelled("payq_store_call_share", ["store", "operation"],
                        (((load.store, op_name), load.shares.get(op_name, 0.0)) for load in stats.stores for op_name in load.calls))
        if stats.redis is not None:
            yield GaugeMetricFamily("payq_redis_replicas", METRICS["payq_redis_replicas"], value=stats.redis.replicas)
            yield GaugeMetricFamily("payq_redis_replicas_in_sync", METRICS["payq_redis_replicas_in_sync"], value=stats.redis.in_sync)
            yield GaugeMetricFamily("payq_redis_min_replicas", METRICS["payq_redis_min_replicas"], value=stats.redis.floor)
            yield GaugeMetricFamily("payq_redis_degraded", METRICS["payq_redis_degraded"], value=int(stats.redis.state is ReplicaState.DEGRADED))
        # every known reason, zeros included, so an alert on one reason has a series to watch from the start
        reasons = sorted({r.value for r in DeadLetterReason} | set(stats.dead_letters))
        yield _labelled("payq_dead_letters", ["reason"], (((reason,), stats.dead_letters.get(reason, 0)) for reason in reasons))
        yield _labelled("payq_endpoint_paused_until_seconds", ["operation"],
                        (((operation.value,), stats.pauses.get(operation.value, 0.0)) for operation in API_OPERATIONS))
        for name, part in (("payq_endpoint_pace_per_second", "pace"), ("payq_endpoint_pace_configured_per_second", "configured"),
                           ("payq_endpoint_pace_learned_per_second", "learned")):
            yield _labelled(name, ["operation"], (((op_name,), getattr(pace, part) or 0.0) for op_name, pace in stats.paces.items()))
        yield GaugeMetricFamily("payq_outbox_events", METRICS["payq_outbox_events"], value=stats.outbox)
        oldest = GaugeMetricFamily("payq_outbox_oldest_seconds", METRICS["payq_outbox_oldest_seconds"])
        if stats.outbox_oldest is not None:
            oldest.add_metric([], stats.outbox_oldest)
        yield oldest
        yield _labelled("payq_api_calls", ["operation", "status"], (((op_name, status), count) for op_name, by_status in stats.api_calls.items()
                                                                   for status, count in sorted(by_status.items())), CounterMetricFamily)
        yield GaugeMetricFamily("payq_workers_live", METRICS["payq_workers_live"], value=len(stats.live_workers))
        steady = sum(1 for seen in stats.live_workers if seen.steady)
        yield GaugeMetricFamily("payq_workers_steady", METRICS["payq_workers_steady"], value=steady)
        yield CounterMetricFamily("payq_worker_starts", METRICS["payq_worker_starts"], value=stats.worker_starts)
        yield _labelled("payq_worker_last_heartbeat_seconds", ["worker"], (((seen.worker,), seen.last_beat) for seen in stats.live_workers))
        yield CounterMetricFamily("payq_jobs_recovered", METRICS["payq_jobs_recovered"], value=stats.recovered)
        yield _labelled("payq_intake_answers", ["status"], (((status,), count) for status, count in stats.intake_answers.items()),
                        CounterMetricFamily)
        if stats.memory is not None:
            yield from _memory_gauges(stats.memory)
        yield GaugeMetricFamily("payq_scrape_timestamp_seconds", METRICS["payq_scrape_timestamp_seconds"], value=stats.taken_at)


def _labelled(name: str, labels: list[str], samples: Iterable[tuple[tuple[str, ...], float]],
              family: type[GaugeMetricFamily] | type[CounterMetricFamily] = GaugeMetricFamily) -> Metric:
    """The metric ``name`` (its help from :data:`METRICS`) with a sample per (label values, value), in their order."""
    metric = family(name, METRICS[name], labels=labels)
    for values, value in samples:
        metric.add_metric(list(values), value)
    return metric


def _memory_gauges(memory: Memory) -> Iterator[Metric]:
    """Redis's memory, payq's keys by kind, a trip's cost, the rate and the projection (tasks/redis/memory.py)."""
    yield GaugeMetricFamily("payq_redis_used_memory_bytes", METRICS["payq_redis_used_memory_bytes"], value=memory.used)
    yield GaugeMetricFamily("payq_redis_maxmemory_bytes", METRICS["payq_redis_maxmemory_bytes"], value=memory.maxmemory)
    yield _labelled("payq_redis_keys", ["kind"], (((kind,), count) for kind, count in memory.by_kind.items()))
    if memory.per_trip is not None:
        yield GaugeMetricFamily("payq_trip_bytes", METRICS["payq_trip_bytes"], value=memory.per_trip)
    yield GaugeMetricFamily("payq_trips_per_second", METRICS["payq_trips_per_second"], value=memory.trips_per_second)
    if memory.projected is not None:
        yield GaugeMetricFamily("payq_redis_projected_memory_bytes", METRICS["payq_redis_projected_memory_bytes"], value=memory.projected)


def make_registry(snapshot: Callable[[], Stats]) -> CollectorRegistry:
    """A registry holding only payq's collector (no process metrics: they would describe this exporter, not payq)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PayqCollector(snapshot))
    return registry


def make_server(host: str, port: int, registry: CollectorRegistry) -> ThreadingHTTPServer:
    """An HTTP server answering ``GET /metrics`` from ``registry``; port 0 picks a free one."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "payq-metrics"

        def do_GET(self) -> None:
            """``/metrics``: the exposition, or 503 naming the cause when Redis cannot be read."""
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, "text/plain; charset=utf-8", b"payq metrics: GET /metrics\n")
                return
            if path != "/metrics":
                self._send(404, "text/plain; charset=utf-8", b"not found; try /metrics\n")
                return
            started = time.monotonic()
            try:
                body = generate_latest(registry)
            except (BrokerUnavailable, redis.RedisError) as exc:
                log.warning("scrape failed after %.2fs: Redis unavailable: %s", time.monotonic() - started, exc)
                self._send(503, "text/plain; charset=utf-8", f"payq metrics: Redis unavailable: {exc}\n".encode())
                return
            self._send(200, CONTENT_TYPE_LATEST, body)

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # one line per scrape every 15 s is noise; failures are logged above
            log.debug(format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), required=True, help="Port to listen on (0 picks a free one, printed on stderr).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; 0.0.0.0 inside a container.")
def metrics(port: int, host: str) -> None:
    """Serve payq's gauges to Prometheus at /metrics.

    Queue depths, deferred jobs, dead letters by reason, endpoint pauses: see
    payq/cli/metrics.py for every name. Each scrape reads Redis afresh; while Redis is unreachable a scrape answers 503.
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with exits_cleanly():
        rt = stores_from_env()
        registry = make_registry(lambda: collect(rt.redis, rt.jobs, rt.dead_letters, rt.pacer, rt.leases, rt.replicas, retention_of(rt.settings)))
        try:
            server = make_server(host, port, registry)
        except OSError as exc:
            click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
            sys.exit(EXIT_FAULT)
        # SIGTERM (docker stop) ends the loop like Ctrl-C, closing the socket on the way out
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        click.echo(f"serving payq metrics on http://{host}:{server.server_address[1]}/metrics", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
