"""GET /v1/jobs/{jobId} and /v1/trips/{storeId}/{shoppingTripId}: the public shape of what `payq job --json` and `payq trip --json` print.

camelCase, UTC ISO 8601 times, and nothing of operators' internals (worker names, task names, who replayed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import redis

from payq.serve.schemas import JobView, TripDeadLetter, TripView
from payq.views import public_job, public_trip
from tests.serve.helpers import REFUND_ID, capture, get, post, problem, refund
from tests.support.jobs import wait_for_state
from tests.support.payq_cli import invoke
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
SNAKE = re.compile(r"[a-z]_[a-z]")


def keys_of(node: object) -> set[str]:
    """Every key in a JSON document, at any depth, except inside the job's own wire fields."""
    if isinstance(node, dict):
        return set(node) | {k for key, v in node.items() if key not in ("request", "result") for k in keys_of(v)}
    if isinstance(node, list):
        return {k for v in node for k in keys_of(v)}
    return set()


def test_a_trip_and_its_jobs_read_over_http_as_payq_job_and_payq_trip_print_them(
    serve: ServeProcess, rdb: redis.Redis, redis_url: str, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    assert post(serve, "/v1/jobs", capture(amount="10.00")).status_code == 202
    assert post(serve, "/v1/jobs", refund(amount="2.50")).status_code == 202
    start_worker()
    capture_record = wait_for_state(rdb, "capture:store-a:t1", "succeeded")
    wait_for_state(rdb, f"refund:{REFUND_ID}", "succeeded")
    report = json.loads(capture_record["result"])["reportJobId"]
    wait_for_state(rdb, report, "succeeded")

    for job_id in ("capture:store-a:t1", f"refund:{REFUND_ID}", report):
        printed = invoke(redis_url, "job", job_id, "--json")
        assert printed.code == 0, printed.stderr
        answer = get(serve, f"/v1/jobs/{job_id}")
        assert answer.status_code == 200 and answer.json() == public_job(printed.json())
        assert set(answer.json()) == set(JobView.model_fields), "the OpenAPI model names every field of the view"
        assert not [k for k in keys_of(answer.json()) if SNAKE.search(k)], "camelCase everywhere"
        assert ISO.fullmatch(answer.json()["enqueuedAt"]) and "worker" not in answer.json()
    settled = get(serve, "/v1/jobs/capture:store-a:t1").json()
    assert settled["reportJobId"] == report == settled["result"]["reportJobId"]
    assert ISO.fullmatch(settled["result"]["settledAt"]), "a time like the others, not epoch seconds"

    printed = invoke(redis_url, "trip", "store-a", "t1", "--json")
    answer = get(serve, "/v1/trips/store-a/t1")
    assert answer.status_code == 200 and answer.json() == public_trip(printed.json())
    assert answer.json()["refunded"] == "2.50" and answer.json()["report"]["jobId"] == report
    assert set(answer.json()) == set(TripView.model_fields)
    assert not [k for k in keys_of(answer.json()) if SNAKE.search(k)] and ISO.fullmatch(answer.json()["capturedAt"])


def test_a_dead_lettered_job_reads_the_same_over_http(
    serve: ServeProcess, rdb: redis.Redis, redis_url: str, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "sequence": ["400", "400"]}]})
    assert post(serve, "/v1/jobs", capture()).status_code == 202
    start_worker()
    wait_for_state(rdb, "capture:store-a:t1", "dead")

    assert get(serve, "/v1/jobs/capture:store-a:t1").json() == public_job(invoke(redis_url, "job", "capture:store-a:t1", "--json").json())
    replayed = invoke(redis_url, "dlq", "replay", "capture:store-a:t1")
    assert replayed.code == 0, replayed.stderr
    # the API answers 400 again: dead again, with the operator's replay in its history (the replay counts at once:
    # the job's state says when it has run again and died)
    wait_for_state(rdb, "capture:store-a:t1", "dead")
    trip = wait_for(lambda: (t := get(serve, "/v1/trips/store-a/t1").json())["deadLetters"] and t["deadLetters"][0]["replays"] == 1 and t,
                    timeout=30, what="the replayed capture to be dead-lettered again")
    assert trip == public_trip(invoke(redis_url, "trip", "store-a", "t1", "--json").json())
    [entry] = trip["deadLetters"]
    assert set(entry) == set(TripDeadLetter.model_fields)
    assert (entry["reason"], entry["jobId"], entry["replays"]) == ("permanent", "capture:store-a:t1", 1)
    assert ISO.fullmatch(entry["deadAt"]), "a time, not epoch seconds"
    shown = json.dumps(trip)
    operators = invoke(redis_url, "dlq", "show", "capture:store-a:t1", "--json").json()
    assert operators["history"] and operators["task"] == "payments.capture", "the operators' entry has them"
    assert not [word for word in ('"history"', '"by"', '"task"', '"worker"', "payments.capture", "celery@", operators["worker"]) if word in shown]


def test_an_unknown_job_or_trip_is_a_404_problem(serve: ServeProcess) -> None:
    # well-formed ids that name nothing (one that no job could have is 422: tests/serve/test_strict_json.py)
    for path in ("/v1/jobs/capture:store-a:never", "/v1/jobs/cancel:store-a:never", f"/v1/jobs/refund:{REFUND_ID}", "/v1/trips/store-a/never"):
        assert problem(get(serve, path), 404)["type"] == "urn:payq:problem:not-found"
