"""GET /v1/jobs/{jobId} and /v1/trips/{storeId}/{shoppingTripId} answer what `payq job --json` and `payq trip --json` print."""

from __future__ import annotations

import json
from collections.abc import Callable

import redis

from payq.serve.schemas import JobView, TripView
from tests.serve.helpers import REFUND_ID, capture, get, post, problem, refund
from tests.support.jobs import wait_for_state
from tests.support.payq_cli import invoke
from tests.support.sandbox import SandboxProcess
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess


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
        assert answer.status_code == 200 and answer.json() == printed.json()
        assert set(answer.json()) == set(JobView.model_fields), "the OpenAPI model names every field of the view"

    printed = invoke(redis_url, "trip", "store-a", "t1", "--json")
    answer = get(serve, "/v1/trips/store-a/t1")
    assert answer.status_code == 200 and answer.json() == printed.json()
    assert answer.json()["refunded"] == "2.50" and answer.json()["report"]["id"] == report
    assert set(answer.json()) == set(TripView.model_fields)


def test_a_dead_lettered_job_reads_the_same_over_http(
    serve: ServeProcess, rdb: redis.Redis, redis_url: str, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "sequence": ["400"]}]})
    assert post(serve, "/v1/jobs", capture()).status_code == 202
    start_worker()
    wait_for_state(rdb, "capture:store-a:t1", "dead")

    assert get(serve, "/v1/jobs/capture:store-a:t1").json() == invoke(redis_url, "job", "capture:store-a:t1", "--json").json()
    trip = get(serve, "/v1/trips/store-a/t1").json()
    assert trip == invoke(redis_url, "trip", "store-a", "t1", "--json").json()
    assert [entry["reason"] for entry in trip["dead_letters"]] == ["permanent"]


def test_an_unknown_job_or_trip_is_a_404_problem(serve: ServeProcess) -> None:
    for path in ("/v1/jobs/capture:store-a:never", "/v1/jobs/no-such-id", f"/v1/jobs/refund:{REFUND_ID}", "/v1/trips/store-a/never"):
        assert problem(get(serve, path), 404)["type"] == "urn:payq:problem:not-found"
