"""One public shape: every key camelCase and every time UTC ISO 8601, in every JSON answer of ``payq serve`` and every ``--json`` of the CLI.

A real stack (private Redis, the sandbox, a worker, ``payq serve``) is driven
through every state a job shows (queued, deferred behind a 429's pause,
succeeded with its chained report, dead-lettered and replayed, an endpoint's
pause lifted by hand); then each document is walked whole. The walk knows no
list of keys: any key that is not camelCase fails, any key naming a time (…At,
…Until, …Time, ``at``, ``timestamp``) must hold an ISO 8601 string, and no
number anywhere may be an epoch time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import redis

from tests.serve.helpers import REFUND_ID, STORE_B, TOKEN_A, capture, feedback, get, post, refund
from tests.support.jobs import wait_for_state
from tests.support.payq_cli import invoke
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess

CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
TIME_KEY = re.compile(r"(?:^at|At|Until|Time|^timestamp)$")
EPOCH_RANGE = (1e9, 1e14)  # seconds (2001 on) up to milliseconds: a count, an amount or a pace never reaches it


def shape_problems(doc: Any, where: str) -> list[str]:
    """Every key that is not camelCase, time that is not ISO 8601, and number that looks like epoch time, in ``doc``."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                at = f"{path}.{key}"
                if not CAMEL.fullmatch(key):
                    found.append(f"{where}: key {at} is not camelCase")
                if TIME_KEY.search(key) and value is not None and not (isinstance(value, str) and ISO.fullmatch(value)):
                    found.append(f"{where}: {at} = {value!r} is not a UTC ISO 8601 time")
                walk(value, at)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif isinstance(node, int | float) and not isinstance(node, bool) and EPOCH_RANGE[0] <= node < EPOCH_RANGE[1]:
            found.append(f"{where}: {path} = {node!r} looks like epoch time")

    walk(doc, "")
    return found


def test_every_json_answer_and_every_json_output_is_camel_case_with_iso_times(
    serve: ServeProcess, rdb: redis.Redis, redis_url: str, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    api.set_faults({"rules": [
        {"endpoint": "cancel", "sequence": ["400", "400"]},
        {"endpoint": "feedback", "shoppingTripId": "t-paused", "sequence": ["429 Retry-After: 600"]},
    ]})
    answers: dict[str, Any] = {}

    def answer(name: str, method: str, path: str, body: Any = None, token: str | None = TOKEN_A, **kwargs: Any) -> Any:
        response = post(serve, path, body, token=token, **kwargs) if method == "POST" else get(serve, path, token=token)
        assert response.headers["Content-Type"].startswith(("application/json", "application/problem+json")), (name, response.text)
        answers[f"HTTP {name} ({response.status_code})"] = response.json()
        return response.json()

    answer("enqueue", "POST", "/v1/jobs", capture("t1", amount="10.00"))
    answer("enqueue again", "POST", "/v1/jobs", capture("t1", amount="10.00"))
    answer("conflict", "POST", "/v1/jobs", capture("t1", amount="99"))
    answer("batch", "POST", "/v1/jobs/batch", {"jobs": [refund("t1", amount="2.50"), {"operation": "cancel", "storeId": "store-a",
                                                      "shoppingTripId": "t-dead"}, capture("t1", amount="1.00")]})
    answer("invalid", "POST", "/v1/jobs", capture("t1", amount="1.001"))
    answer("malformed", "POST", "/v1/jobs", "{")
    answer("forbidden", "POST", "/v1/jobs", capture("t9", store=STORE_B))
    answer("unauthorized", "GET", "/v1/jobs/capture:store-a:t1", token=None)
    answer("queued job", "GET", "/v1/jobs/capture:store-a:t1")
    worker = start_worker()
    capture_record = wait_for_state(rdb, "capture:store-a:t1", "succeeded")
    report = json.loads(capture_record["result"])["reportJobId"]
    wait_for_state(rdb, report, "succeeded")
    wait_for_state(rdb, f"refund:{REFUND_ID}", "succeeded")
    wait_for_state(rdb, "cancel:store-a:t-dead", "dead")
    # only now, once t1's report has succeeded: its 429 pauses the whole feedback endpoint
    answer("enqueue a report", "POST", "/v1/jobs", feedback("t-paused"))
    wait_for_state(rdb, "feedback:store-a:t-paused:1700000000", "deferred")
    assert invoke(redis_url, "dlq", "replay", "cancel:store-a:t-dead").code == 0
    wait_for(lambda: rdb.hexists("payq:dlq", "cancel:store-a:t-dead"), what="the replayed cancel to be dead-lettered again")
    worker.stop()
    for job_id in ("capture:store-a:t1", report, f"refund:{REFUND_ID}", "cancel:store-a:t-dead", "feedback:store-a:t-paused:1700000000"):
        answer(f"job {job_id}", "GET", f"/v1/jobs/{job_id}")
    answer("trip", "GET", "/v1/trips/store-a/t1")
    answer("dead trip", "GET", "/v1/trips/store-a/t-dead")
    answer("unknown job", "GET", "/v1/jobs/capture:store-a:nope")
    answer("no route", "GET", "/v2/jobs")
    answers["HTTP /healthz"] = serve.request("GET", "/healthz").json()
    answers["HTTP /readyz"] = serve.request("GET", "/readyz").json()

    outputs = {
        "payq job --json": [invoke(redis_url, "job", job_id, "--json") for job_id in
                            ("capture:store-a:t1", report, "cancel:store-a:t-dead", "feedback:store-a:t-paused:1700000000")],
        "payq trip --json": [invoke(redis_url, "trip", "store-a", trip, "--json") for trip in ("t1", "t-dead")],
        "payq dlq list --json": [invoke(redis_url, "dlq", "list", "--json")],
        "payq dlq show --json": [invoke(redis_url, "dlq", "show", "cancel:store-a:t-dead", "--json")],
        "payq stats --json": [invoke(redis_url, "stats", "--json")],
    }
    assert invoke(redis_url, "pace", "reset", "feedback").code == 0
    outputs["payq pace log --json"] = [invoke(redis_url, "pace", "log", "--json")]
    outputs["payq token new --json"] = [invoke(redis_url, "token", "new", "--store", "s1", "--json")]
    for name, runs in outputs.items():
        for ran in runs:
            assert ran.code == 0, (name, ran.stderr)
            answers[name + f" #{runs.index(ran)}"] = ran.json()

    problems = [p for name, doc in answers.items() for p in shape_problems(doc, name)]
    assert problems == []
    # the walk met the times it is about: as ISO 8601, where epoch seconds were before
    shown = json.dumps(answers)
    for time_key in ("paymentStatusTime", "settledAt", "deadAt", "replayedAt", "takenAt", "until", "enqueuedAt", "deferredUntil"):
        assert f'"{time_key}": "' in shown, f"no {time_key} was shown: the walk proves nothing about it"
    assert all("jobId" in answers[f"HTTP job {job_id} (200)"] for job_id in ("capture:store-a:t1", report))


def test_the_walk_catches_snake_case_epoch_times_and_data_as_keys() -> None:
    bad = {"job_id": "x", "deadAt": 1796615805, "pace": {"at": 1796615771.02}, "queues": {"payments.capture": 3},
           "request": {"paymentStatusTime": 1700000000}}

    assert shape_problems(bad, "doc") == [
        "doc: key .job_id is not camelCase",
        "doc: .deadAt = 1796615805 is not a UTC ISO 8601 time",
        "doc: .deadAt = 1796615805 looks like epoch time",
        "doc: .pace.at = 1796615771.02 is not a UTC ISO 8601 time",
        "doc: .pace.at = 1796615771.02 looks like epoch time",
        "doc: key .queues.payments.capture is not camelCase",
        "doc: .request.paymentStatusTime = 1700000000 is not a UTC ISO 8601 time",
        "doc: .request.paymentStatusTime = 1700000000 looks like epoch time",
    ]
