"""Scenario 3, Redis unavailable: enqueueing fails clearly (exit 1), succeeds once Redis is back, and a worker waits it out.

The worker is idle when Redis goes away, so it holds no message: it must
neither exit nor need its supervisor, only reconnect and take the next job.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from config.settings import Settings
from payapi.errors import BrokerUnavailable
from tasks.producer import Producer
from tests.faults.audit import leftovers, records, unhandled_tracebacks
from tests.faults.report import Figures, Recorder
from tests.support.fault_redis import FaultRedis
from tests.support.fault_workers import FaultWorker
from tests.support.payq_cli import run_payq
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess

DOWN_SECONDS = 5.0
OUTAGE_SECONDS = 8.0  # several of every thread's retry intervals (1 s), short of the once-a-minute reminder
RETRY_SECONDS = 1.0
USD = {"amount": "7.50", "code": "USD"}
CAPTURE_ARGS = ("enqueue", "capture", "--store-id", "s-down", "--trip-id", "{trip}", "--amount", "7.50", "--currency", "USD")


def payq(redis_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``payq`` console script, as a store backend runs it, impatient with an unreachable Redis."""
    return run_payq(redis_url, *args, cwd=cwd, retry_seconds=RETRY_SECONDS)


def capture(trip: str) -> list[str]:
    """``payq enqueue capture`` arguments for ``trip``."""
    return [a.format(trip=trip) for a in CAPTURE_ARGS]


@pytest.mark.slow
@pytest.mark.timeout(600)  # pyproject's 300 s is too short on a machine other runs keep busy
def test_enqueue_fails_clearly_while_redis_is_down_and_the_worker_resumes_when_it_is_back(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
    tmp_path: Path, fault_report: Recorder,
) -> None:
    started = time.monotonic()
    api = make_sandbox("--auto-register")
    worker = make_worker(private_redis.url, api.url, concurrency=4)
    pid = worker.pid
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text(json.dumps({"operation": "cancel", "storeId": "s-down", "shoppingTripId": "t-file"}) + "\n")

    private_redis.stop()
    down_at = time.monotonic()
    refused = [
        payq(private_redis.url, tmp_path, *capture("t-while-down")),
        payq(private_redis.url, tmp_path, "enqueue", "--file", str(jobs_file)),
    ]
    with pytest.raises(BrokerUnavailable, match="cannot reach Redis"):
        Producer(Settings(redis_url=private_redis.url, redis_retry_seconds=RETRY_SECONDS)).enqueue_capture(
            storeId="s-down", shoppingTripId="t-api-while-down", amount=USD)
    # keep Redis away long enough for the worker's reconnection attempts to fail a few times
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
    alive_while_down = worker.alive
    private_redis.start()

    accepted = payq(private_redis.url, tmp_path, *capture("t-after"))
    rdb = private_redis.client()
    job_id = accepted.stdout.strip()
    report = wait_for(lambda: next((t for t in api.ledger() if t["shoppingTripId"] == "t-after" and t["reports"]), None),
                      timeout=60, what="the job enqueued after the outage to be captured and reported")
    wait_for(lambda: not leftovers(rdb), what="every message to be acknowledged")
    never_published = records(rdb, ["capture:s-down:t-while-down", "cancel:s-down:t-file", "capture:s-down:t-api-while-down"], "state")
    log = worker.log()
    fault_report.add(Figures(
        scenario=3, title="Redis unavailable", jobs=2, jobs_detail="1 capture + its report enqueued after the outage; "
        f"{len(refused) + 1} enqueues refused during it (CLI exit {sorted({r.returncode for r in refused})}, Python API BrokerUnavailable)",
        faults=f"redis-server stopped for {DOWN_SECONDS:g} s under an idle worker",
        lost=0 if report["captured"] == USD and len(report["reports"]) == 1 else 1, duplicates=len(api.requests()) - 2,
        notes=f"worker process kept (same pid: {worker.pid == pid}), job after the outage ran",
        seconds=time.monotonic() - started,
    ))

    for ran in refused:
        assert ran.returncode == 1, ran.stderr
        assert ran.stdout == "", "no job id for a job that was not published"
        # one line naming the cause (--file prints its progress bar's label first)
        line = ran.stderr.splitlines()[-1]
        assert line.startswith(f"error: cannot reach Redis at {private_redis.url}: "), ran.stderr
        assert "Traceback" not in ran.stderr
    assert never_published == [{"state": None}] * 3, "nothing refused reached Redis"
    assert accepted.returncode == 0, accepted.stderr
    assert job_id == "capture:s-down:t-after"
    assert alive_while_down and worker.alive and worker.pid == pid, "the idle worker must ride the outage out"
    assert "Connection to broker lost" in log or "Cannot connect to" in log, "the worker noticed the outage"
    assert unhandled_tracebacks(log) == []
    assert [e["status"] for e in api.requests()] == [200, 200]


def test_a_redis_outage_is_a_state_in_the_log_with_notifications_on(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
) -> None:
    """Every thread of a worker meets the outage (job fetch, heartbeat, housekeeping, delivery): the log says it as one state."""
    api = make_sandbox("--auto-register")
    notify = {"PAYQ_NOTIFY_URL": f"{api.url}/receiver", "PAYQ_NOTIFY_SECRET": "whsec_" + "A" * 43 + "="}
    worker = make_worker(private_redis.url, api.url, concurrency=64, env=notify)  # two delivery threads
    before = len(worker.log().splitlines())

    private_redis.stop()
    time.sleep(OUTAGE_SECONDS)  # the outage itself: what the log says during it is the subject
    private_redis.start()
    Producer(Settings(redis_url=private_redis.url, redis_retry_seconds=RETRY_SECONDS)).enqueue_capture(
        storeId="s-down", shoppingTripId="t-after-outage", amount=USD)
    wait_for(lambda: private_redis.client().hget("payq:job:capture:s-down:t-after-outage", "state") == "succeeded", timeout=60,
             what="the capture enqueued after the outage to succeed")

    during = worker.log().splitlines()[before:]
    about_redis = [line for line in during if "Redis" in line or "redis" in line or "broker" in line]
    assert worker.alive
    assert not [line for line in during if line.startswith("delivery:") or " delivery: " in line], "delivery threads say nothing of their own"
    assert len(about_redis) <= 8, about_redis  # entering, leaving, and Celery's own one line per lost connection
    assert unhandled_tracebacks("\n".join(during)) == []
