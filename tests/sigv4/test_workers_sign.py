"""Real workers signing with SigV4 against the verifying sandbox: accepted, refused, dead-lettered, replayed, and never leaking.

The credentials reach the workers the way production gives them: AWS_*
environment variables read by botocore's standard chain.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tasks.producer import Producer
from tests.sigv4.conftest import ACCESS_KEY, REGION, SECRET_KEY, SESSION_TOKEN, WRONG_SECRET_KEY, secret_fragments, sigv4_env
from tests.support.flower import FlowerProcess, wait_until_watched
from tests.support.payq_cli import invoke
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import REPO_ROOT, WorkerProcess

USD = {"amount": "19.99", "code": "USD"}
CAPTURE_PATH = "/v1/capture/charge"
FEEDBACK_PATH = "/v1/feedback/payment-status"


@pytest.fixture
def flower(redis_url: str) -> Iterator[FlowerProcess]:
    """Flower on the private Redis: what an operator would see of the jobs."""
    process = FlowerProcess(redis_url)
    yield process
    process.stop()


def job_state(redis_url: str, job_id: str) -> str:
    """The job's state as ``payq job --json`` reports it."""
    ran = invoke(redis_url, "job", job_id, "--json")
    return str(ran.json()["state"]) if ran.code == 0 else f"exit {ran.code}"


def reported(api: SandboxProcess, trip: str) -> dict[str, Any] | None:
    """The trip's ledger entry once its payment-status report has arrived."""
    trips = [t for t in api.ledger() if t["shoppingTripId"] == trip and t["reports"]]
    return trips[0] if trips else None


def flower_task(flower: FlowerProcess, job_id: str, state: str) -> dict[str, Any] | None:
    """The job as Flower's API shows it, once it is in ``state``."""
    response = flower.get(f"/api/task/info/{job_id}")  # 404 until Flower has heard of the task
    task: dict[str, Any] | None = response.json() if response.ok else None
    return task if task is not None and task.get("state") == state else None


def redis_dump(url: str) -> str:
    """Every key and value in Redis as text: queued messages (task kwargs), job records, dead letters."""
    client = redis.Redis.from_url(url, decode_responses=True)
    parts = []
    for key in client.scan_iter():
        kind = client.type(key)
        value: object = {
            "string": client.get, "hash": client.hgetall, "list": lambda k: client.lrange(k, 0, -1),
            "set": client.smembers, "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
            "stream": lambda k: client.xrange(k),
        }.get(kind, lambda k: None)(key)
        parts.append(f"{key} {value!r}")
    client.close()
    return "\n".join(parts)


def assert_nowhere(secrets: list[str], **places: str) -> None:
    """No secret (nor a fragment of one) in any of the named texts; the failure names the place, not the secret."""
    for where, text in places.items():
        for i, secret in enumerate(secrets):
            assert secret not in text, f"credential fragment #{i} appears in {where}"


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_temporary_credentials_sign_every_request_with_the_security_token(
    redis_url: str, api: SandboxProcess, producer: Producer, start_worker: Callable[..., WorkerProcess], pool: str,
) -> None:
    # prefork: each child process resolves the credentials again after the fork, and signs with them
    worker = start_worker(env=sigv4_env(token=SESSION_TOKEN), pool=pool, concurrency=2)
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t-token", amount=USD)

    trip = wait_for(lambda: reported(api, "t-token"), timeout=60, what="the capture and its signed payment-status report")

    assert trip["captured"] == USD
    entries = api.requests()
    assert {e["path"] for e in entries} == {CAPTURE_PATH, FEEDBACK_PATH}
    for entry in entries:
        headers = entry["headers"]
        assert entry["status"] != 403, entry  # (a busy machine may time a call out and repeat it: never refused)
        assert headers["X-Amz-Security-Token"] == SESSION_TOKEN
        assert re.match(rf"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/\d{{8}}/{REGION}/execute-api/aws4_request, "
                        r"SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$",
                        headers["Authorization"])
    assert_nowhere(
        secret_fragments(SECRET_KEY, SESSION_TOKEN),
        worker_log=worker.log(), redis=redis_dump(redis_url), job=invoke(redis_url, "job", job_id, "--json").stdout,
    )


def test_a_wrong_secret_dead_letters_after_one_call_and_replay_after_the_fix_succeeds(
    redis_url: str, api: SandboxProcess, producer: Producer, start_worker: Callable[..., WorkerProcess], flower: FlowerProcess,
) -> None:
    secrets = secret_fragments(SECRET_KEY, WRONG_SECRET_KEY)
    misconfigured = start_worker(env=sigv4_env(WRONG_SECRET_KEY))
    wait_until_watched(flower, misconfigured)

    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t-rotated", amount=USD)
    wait_for(lambda: job_state(redis_url, job_id) == "dead-lettered", timeout=60, what="the refused capture to be dead-lettered")

    [refused] = api.requests(CAPTURE_PATH)
    assert refused["status"] == 403, "exactly one call: a 403 is permanent"
    listed = invoke(redis_url, "dlq", "list", "--json")
    [entry] = listed.json()
    assert (entry["jobId"], entry["reason"], entry["status"], entry["attempts"]) == (job_id, "permanent", 403, 1)
    assert "wrong signature" in entry["error"]
    dead_job = invoke(redis_url, "job", job_id, "--json")
    failed_in_flower = wait_for(lambda: flower_task(flower, job_id, "FAILURE"), timeout=60, what="Flower to show the dead-lettered capture")
    assert "'shoppingTripId': 't-rotated'" in failed_in_flower["kwargs"] and "HTTP 403" in failed_in_flower["exception"]

    # The operator fixes the credentials (a restart with the right secret), then replays.
    misconfigured.stop()
    fixed = start_worker(env=sigv4_env(SECRET_KEY))
    wait_until_watched(flower, fixed)
    replayed = invoke(redis_url, "dlq", "replay", job_id)
    assert replayed.code == 0, replayed.stderr
    trip = wait_for(lambda: reported(api, "t-rotated"), timeout=60, what="the replayed capture and its report")

    assert trip["captured"] == USD and len(trip["reports"]) == 1
    statuses = [e["status"] for e in api.requests(CAPTURE_PATH)]
    assert statuses[0] == 403 and statuses.count(403) == 1 and statuses[-1] == 200, statuses
    assert job_state(redis_url, job_id) == "succeeded"
    succeeded_in_flower = wait_for(lambda: flower_task(flower, job_id, "SUCCESS"), timeout=60, what="Flower to show the replayed capture")
    assert_nowhere(
        secrets,
        misconfigured_worker_log=misconfigured.log(), fixed_worker_log=fixed.log(), dlq_list_json=listed.stdout,
        dead_job_json=dead_job.stdout, job_json=invoke(redis_url, "job", job_id, "--json").stdout,
        dlq_list_after_replay=invoke(redis_url, "dlq", "list", "--json").stdout, redis=redis_dump(redis_url),
        flower_failed=json.dumps(failed_in_flower), flower_tasks=flower.get("/api/tasks").text,
        flower_succeeded=json.dumps(succeeded_in_flower), sandbox_log=json.dumps(api.requests()), sandbox_output=api.output(),
    )


def test_a_worker_with_sigv4_and_no_credentials_exits_at_start_with_a_clear_message(redis_url: str, api: SandboxProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "threads", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PAYQ_REDIS_URL": redis_url, "PAYQ_API_BASE_URL": api.url, "PAYQ_API_AUTH": "sigv4", "PAYQ_AWS_REGION": REGION},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 78, output  # EX_CONFIG
    assert "payq worker cannot start: PAYQ_API_AUTH=sigv4 but no AWS credentials were found" in output
    assert "Traceback" not in output
    assert not api.requests(), "it took no job"
