"""Bearer tokens: none or an unknown one is 401; a token uses only its own stores, for enqueueing and for reading."""

from __future__ import annotations

import json

import pytest
import redis

from tests.serve.helpers import (
    REFUND_ID,
    STORE_A,
    STORE_B,
    TOKEN_A,
    TOKEN_AB,
    TOKEN_B,
    bearer,
    cancel,
    capture,
    errors,
    get,
    post,
    problem,
    refund,
    serve_env,
)
from tests.support.payq_cli import run_payq
from tests.support.serve import ServeProcess, written

ROUTES = [("POST", "/v1/jobs"), ("POST", "/v1/jobs/batch"), ("GET", "/v1/jobs/capture:store-a:t1"), ("GET", "/v1/trips/store-a/t1")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_a_token_every_route_is_401_with_a_bearer_challenge(serve: ServeProcess, method: str, path: str) -> None:
    answer = serve.request(method, path, data=json.dumps(cancel()))

    problem(answer, 401)
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="payq"'


@pytest.mark.parametrize("authorization", [
    "Bearer not-a-token-payq-knows", "Bearer " + TOKEN_A + "x", "Basic c3RvcmUtYTpzZWNyZXQ=", "Bearer", TOKEN_A,
], ids=["unknown", "a-known-one-altered", "basic", "scheme-without-token", "token-without-scheme"])
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_an_unknown_token_or_another_scheme_is_401_and_nothing_is_written(
    serve: ServeProcess, rdb: redis.Redis, method: str, path: str, authorization: str,
) -> None:
    answer = serve.request(method, path, data=json.dumps(cancel()), headers={"Authorization": authorization})

    problem(answer, 401)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert written(rdb) == []


def test_tokens_are_never_echoed_nor_logged(serve: ServeProcess) -> None:
    unknown = "an-unknown-token-that-must-not-leak"
    answers = [post(serve, "/v1/jobs", cancel(), token=unknown), post(serve, "/v1/jobs", cancel(store=STORE_B), token=TOKEN_A),
               post(serve, "/v1/jobs", {"operation": "cancel"}, token=TOKEN_A), get(serve, "/v1/jobs/nope", token=TOKEN_A)]

    for answer in answers:
        shown = answer.text + json.dumps(dict(answer.headers))
        assert unknown not in shown and TOKEN_A not in shown
    assert unknown not in serve.output() and TOKEN_A not in serve.output()


def test_a_token_for_store_a_cannot_enqueue_for_store_b(serve: ServeProcess, rdb: redis.Redis) -> None:
    body = problem(post(serve, "/v1/jobs", capture(store=STORE_B), token=TOKEN_A), 403)

    assert errors(body) == [(None, "storeId", "this token may not use store 'store-b'")]
    assert written(rdb) == [], "nothing was written"


def test_a_token_for_store_a_cannot_read_store_b_jobs_or_trips(serve: ServeProcess) -> None:
    assert post(serve, "/v1/jobs", capture(store=STORE_B), token=TOKEN_B).status_code == 202

    for path in ("/v1/jobs/capture:store-b:t1", "/v1/trips/store-b/t1"):
        assert get(serve, path, token=TOKEN_B).status_code == 200
        problem(get(serve, path, token=TOKEN_A), 403)
    # the same answer whether store B has the trip or not: a 403 reveals nothing of B's jobs
    for path in ("/v1/jobs/capture:store-b:never", "/v1/jobs/feedback:store-b:never:1700000000", "/v1/trips/store-b/never"):
        problem(get(serve, path, token=TOKEN_A), 403)


def test_another_store_refund_reads_as_unknown_since_its_id_names_no_store(serve: ServeProcess) -> None:
    assert post(serve, "/v1/jobs", capture(store=STORE_B), token=TOKEN_B).status_code == 202
    assert post(serve, "/v1/jobs", refund(store=STORE_B), token=TOKEN_B).status_code == 202

    assert get(serve, f"/v1/jobs/refund:{REFUND_ID}", token=TOKEN_B).json()["request"]["storeId"] == STORE_B
    theirs = problem(get(serve, f"/v1/jobs/refund:{REFUND_ID}", token=TOKEN_A), 404)
    unknown = problem(get(serve, "/v1/jobs/refund:0e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a", token=TOKEN_A), 404)
    assert theirs["title"] == unknown["title"]


def test_a_token_for_two_stores_uses_both(serve: ServeProcess) -> None:
    for store in (STORE_A, STORE_B):
        assert post(serve, "/v1/jobs", cancel(store=store), token=TOKEN_AB).status_code == 202
        assert get(serve, f"/v1/jobs/cancel:{store}:t1", token=TOKEN_AB).status_code == 200
        assert get(serve, f"/v1/trips/{store}/t1", token=TOKEN_AB).status_code == 200


def test_payq_token_new_prints_a_token_and_the_entry_that_makes_payq_serve_accept_it(redis_url: str) -> None:
    made = run_payq(redis_url, "token", "new", "--store", "s1", "--store", "s2", "--store", "s1")
    assert made.returncode == 0, made.stderr
    token, entry = made.stdout.splitlines()
    assert len(token) >= 43 and token not in entry and token not in made.stderr
    assert list(json.loads(entry).values()) == [["s1", "s2"]]

    with ServeProcess(redis_url, env=serve_env(PAYQ_INTAKE_TOKENS=entry)) as serve:
        for store in ("s1", "s2"):
            assert post(serve, "/v1/jobs", cancel(store=store), token=token).status_code == 202
        problem(post(serve, "/v1/jobs", cancel(store="s3"), token=token), 403)
        problem(post(serve, "/v1/jobs", cancel(store="s1"), token=TOKEN_A), 401)


def test_payq_token_new_as_json_and_with_a_bad_store(redis_url: str) -> None:
    made = run_payq(redis_url, "token", "new", "--store", "s1", "--json")
    assert made.returncode == 0, made.stderr
    printed = json.loads(made.stdout)
    assert set(printed) == {"token", "sha256", "stores"} and printed["stores"] == ["s1"]

    refused = run_payq(redis_url, "token", "new", "--store", "s1", "--store", "not a store")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert "--store: 'not a store' must match" in refused.stderr


@pytest.mark.parametrize(("method", "path", "status", "kind", "says"), [
    ("GET", "/v2/jobs", 404, "not-found", "there is no route GET /v2/jobs"),
    ("GET", "/", 404, "not-found", "there is no route GET /"),
    ("DELETE", "/v1/jobs", 405, "method-not-allowed", "/v1/jobs does not take DELETE; it takes POST"),
    ("PUT", "/v1/jobs/capture:store-a:t1", 405, "method-not-allowed", "does not take PUT; it takes GET"),
])
def test_an_unknown_route_or_method_is_a_problem_too(serve: ServeProcess, method: str, path: str, status: int, kind: str, says: str) -> None:
    answer = serve.request(method, path, headers=bearer(TOKEN_A))

    refused = problem(answer, status)
    assert refused["type"] == f"urn:payq:problem:{kind}" and says in refused["detail"], refused
    assert "detail" in refused and set(refused) <= {"type", "title", "status", "detail", "errors"}, "not FastAPI's {detail: ...}"
    if status == 405:
        assert answer.headers["Allow"]


def test_liveness_and_readiness_need_no_token(serve: ServeProcess) -> None:
    assert serve.request("GET", "/healthz").json() == {"ok": True}
    ready = serve.request("GET", "/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ready": True, "degraded": False, "replicasInSync": 0})
