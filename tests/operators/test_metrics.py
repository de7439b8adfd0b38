"""``payq metrics``: Prometheus gauges read from Redis on every scrape, 503 while Redis is down."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from config.settings import Settings
from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind
from tasks.jobs.deferral import Deferral
from tasks.producer import Producer
from tasks.redis import keys
from tasks.states import DeferCause
from tests.support.deadletters import Spec, seed
from tests.support.payq_cli import REPO_ROOT, cli_env, payq_command
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer
from tests.support.worker import WorkerProcess
from workers.runtime import Runtime

USD = {"amount": "1.00", "code": "USD"}


class MetricsProcess:
    """``payq metrics --port 0`` in a subprocess; the chosen port is read from its stderr."""

    def __init__(self, redis_url: str) -> None:
        self.process = subprocess.Popen(
            [*payq_command(), "metrics", "--port", "0"], cwd=REPO_ROOT, env={**os.environ, **cli_env(redis_url)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert self.process.stderr is not None
        line = self.process.stderr.readline()  # the first line names the address; blocks only until it is printed
        match = re.search(r"serving payq metrics on (http://\S+)", line)
        assert match, f"unexpected first line: {line!r}"
        self.url = match.group(1)
        self.session = requests.Session()
        self.session.trust_env = False

    def scrape(self) -> requests.Response:
        """GET /metrics."""
        return self.session.get(self.url, timeout=15)

    def stop(self) -> int:
        """SIGTERM; returns the exit code."""
        self.process.terminate()
        code = self.process.wait(timeout=10)
        self.session.close()
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


@pytest.fixture
def exporter(redis_url: str) -> Iterator[MetricsProcess]:
    """The exporter on the private Redis."""
    process = MetricsProcess(redis_url)
    yield process
    if process.process.poll() is None:
        process.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def test_metrics_export_queue_depths_deferred_dead_letters_and_pauses(op_settings: Settings, exporter: MetricsProcess) -> None:
    seed(op_settings, [Spec(trip="d1"), Spec(trip="d2"), Spec(trip="d3", reason="retries-exhausted", status=503)])
    rt = Runtime.build(op_settings)
    producer = Producer(op_settings, rt.redis)
    for trip in ("q1", "q2", "q3"):
        producer.enqueue_capture(storeId="s1", shoppingTripId=trip, amount=USD)
    producer.enqueue_cancel(storeId="s1", shoppingTripId="q4")
    now = time.time()
    unavailable, server_error = Failure(FailureKind.UNAVAILABLE, 503), Failure(FailureKind.SERVER_ERROR, 500)
    rt.jobs.defer("capture:s1:q1", Deferral(DeferCause.RETRY_AFTER, now + 30, Operation.CAPTURE, 1, 30.0, unavailable), now)
    rt.jobs.defer("capture:s1:q2", Deferral(DeferCause.BACKOFF, now - 5, Operation.CAPTURE, 1, None, server_error), now)
    rt.pacer.pause("refund", now + 120, now)
    beat = rt.leases.beat("host.1.abc", [])  # a live worker process
    rt.redis.incrby(keys.RECOVERED, 2)  # jobs given back from workers whose lease lapsed

    response = exporter.scrape()

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    got = samples(response.text)
    assert got[("payq_queue_depth", (("queue", "payments.capture"),))] == 3
    assert got[("payq_queue_depth", (("queue", "payments.cancel"),))] == 1
    assert got[("payq_queue_depth", (("queue", "payments.refund"),))] == 0
    assert got[("payq_unacked_jobs", ())] == 0
    assert got[("payq_deferred_jobs", ())] == 2
    assert got[("payq_deferred_next_due_seconds", ())] == pytest.approx(now - 5, abs=0.01)
    assert 4 < got[("payq_deferred_overdue_seconds", ())] < 30
    assert got[("payq_dead_letters", (("reason", "permanent"),))] == 2
    assert got[("payq_dead_letters", (("reason", "retries-exhausted"),))] == 1
    assert got[("payq_dead_letters", (("reason", "internal-error"),))] == 0
    assert got[("payq_endpoint_paused_until_seconds", (("operation", "refund"),))] == pytest.approx(now + 120, abs=0.01)
    assert got[("payq_endpoint_paused_until_seconds", (("operation", "capture"),))] == 0
    assert got[("payq_workers_live", ())] == 1
    assert got[("payq_worker_last_heartbeat_seconds", (("worker", "host.1.abc"),))] == pytest.approx(beat.now, abs=0.01)
    assert got[("payq_jobs_recovered_total", ())] == 2
    assert got[("payq_scrape_timestamp_seconds", ())] >= now

    # every scrape reads Redis afresh
    rt.dead_letters.purge([e.id for e in rt.dead_letters.list()])
    assert samples(exporter.scrape().text)[("payq_dead_letters", (("reason", "permanent"),))] == 0
    assert exporter.session.get(exporter.url.replace("/metrics", "/nope"), timeout=5).status_code == 404
    assert exporter.stop() == 0, "SIGTERM is a clean stop"


def test_metrics_export_when_each_queues_next_job_was_queued(op_settings: Settings, exporter: MetricsProcess) -> None:
    rt = Runtime.build(op_settings)
    producer = Producer(op_settings, rt.redis)
    for trip in ("first", "second"):
        producer.enqueue_capture(storeId="s1", shoppingTripId=trip, amount=USD)
    first = float(rt.redis.hget(keys.job("capture:s1:first"), "updated_at"))  # type: ignore[arg-type]
    assert first < float(rt.redis.hget(keys.job("capture:s1:second"), "updated_at"))  # type: ignore[arg-type]

    got = samples(exporter.scrape().text)

    assert got[("payq_queue_oldest_seconds", (("queue", "payments.capture"),))] == pytest.approx(first, abs=0.001), \
        "the job next in line is the first one queued"
    assert [labels for name, labels in got if name == "payq_queue_oldest_seconds"] == [(("queue", "payments.capture"),)], \
        "an empty queue has no oldest job"

    # the next message's job is no longer queued (a copy of a job that went on): no figure rather than a wrong one
    rt.redis.hset(keys.job("capture:s1:first"), "state", "running")
    assert ("payq_queue_oldest_seconds", (("queue", "payments.capture"),)) not in samples(exporter.scrape().text)

    # another store's lane (tasks/store/lanes.py): counted in the depth, and its next job is one of those next in line
    producer.enqueue_capture(storeId="s2", shoppingTripId="third", amount=USD)
    third = float(rt.redis.hget(keys.job("capture:s2:third"), "updated_at"))  # type: ignore[arg-type]
    got = samples(exporter.scrape().text)
    assert got[("payq_queue_depth", (("queue", "payments.capture"),))] == 3
    assert got[("payq_queue_oldest_seconds", (("queue", "payments.capture"),))] == pytest.approx(third, abs=0.001)
    rt.redis.hset(keys.job("capture:s1:first"), "state", "queued")
    assert samples(exporter.scrape().text)[("payq_queue_oldest_seconds", (("queue", "payments.capture"),))] == \
        pytest.approx(first, abs=0.001), "the longest waiting of the lanes' next jobs"


def test_metrics_export_steady_workers_worker_starts_and_the_intakes_answers(op_settings: Settings, exporter: MetricsProcess) -> None:
    rt = Runtime.build(op_settings)
    beat = rt.leases.beat("host.1.new", [])
    rt.leases.beat("host.2.old", [])
    rt.redis.hset(keys.WORKERS_STEADY, "host.2.old", beat.now - 2 * op_settings.lease_seconds)  # beating unbroken for two leases
    rt.redis.incrby(keys.WORKER_STARTS, 3)
    rt.redis.hset(keys.INTAKE_ANSWERS, mapping={"202": 40, "503": 2})

    got = samples(exporter.scrape().text)

    assert (got[("payq_workers_live", ())], got[("payq_workers_steady", ())]) == (2, 1)
    assert got[("payq_worker_starts_total", ())] == 3
    assert got[("payq_intake_answers_total", (("status", "202"),))] == 40
    assert got[("payq_intake_answers_total", (("status", "503"),))] == 2
    assert got[("payq_redis_min_replicas", ())] == 0, "the floor with a redis:// URL and nothing set"


def test_a_worker_process_counts_its_start_and_is_steady_a_lease_after_it(
    exporter: MetricsProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()

    def figures() -> tuple[float, float, float]:
        got = samples(exporter.scrape().text)
        return got[("payq_worker_starts_total", ())], got[("payq_workers_live", ())], got[("payq_workers_steady", ())]

    wait_for(lambda: figures()[:2] == (1, 1), timeout=15, what="one start, one live worker")
    assert figures()[2] == 0, "not steady before it has beaten for a lease"
    wait_for(lambda: figures() == (1, 1, 1), timeout=30, what="the worker steady a lease (10 s by default) after its start")

    worker.kill()
    worker.start()
    wait_for(lambda: figures()[0] == 2, timeout=15, what="the restarted process counted")


def test_metrics_answer_503_while_redis_is_down_and_recover(redis_server: RedisServer, exporter: MetricsProcess) -> None:
    assert exporter.scrape().status_code == 200
    redis_server.stop()
    try:
        down = exporter.scrape()
        assert down.status_code == 503
        assert down.text.startswith("payq metrics: Redis unavailable: ")
        assert exporter.process.poll() is None, "still serving"
    finally:
        redis_server.start()

    wait_for(lambda: exporter.scrape().status_code == 200, timeout=10, what="scrapes to succeed again")


def test_metrics_export_redis_s_memory_keys_by_kind_a_trip_s_cost_and_the_projection(
    op_settings: Settings, exporter: MetricsProcess, api: object, start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    producer = Producer(op_settings)
    captures = [producer.enqueue_capture(storeId="s1", shoppingTripId=f"m{i}", amount=USD) for i in range(30)]
    rt = Runtime.build(op_settings)
    wait_for(lambda: all(rt.redis.hget(keys.job(f"feedback:s1:m{i}:{rt.redis.hget(keys.job(c), 'settled_at')}"), "state") == "succeeded"
                         for i, c in enumerate(captures)), timeout=60, what="every trip captured and reported")
    # captures this tenth of a second: >= 5 a second over the seconds the counts are kept
    rt.redis.incrby(keys.successes("capture", int(time.time() * 10)), 5 * keys.SUCCESSES_KEPT)

    got = samples(exporter.scrape().text)

    assert got[("payq_redis_used_memory_bytes", ())] > 0 and got[("payq_redis_maxmemory_bytes", ())] == 0
    assert got[("payq_redis_keys", (("kind", "job:capture"),))] > 0 and got[("payq_redis_keys", (("kind", "trip"),))] > 0
    trip = got[("payq_trip_bytes", ())]
    assert 300 < trip < 2000, "a settled trip's two compact records and its books"
    rate = got[("payq_trips_per_second", ())]
    assert rate >= 5
    assert rate * 86400 * 3 * 300 < got[("payq_redis_projected_memory_bytes", ())] < rate * 86400 * 8 * trip
    stats = subprocess.run([*payq_command(), "stats"], cwd=REPO_ROOT, env={**os.environ, **cli_env(op_settings.redis_url)},
                           capture_output=True, text=True, timeout=30, check=True).stdout
    assert "redis memory:" in stats and "(no maxmemory)" in stats and "a settled trip:" in stats and "at steady state" in stats
