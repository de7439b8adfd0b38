"""Redis unreachable: 503 with Retry-After and nothing written; once it is back, the same request is taken."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tasks.store import lanes
from tests.serve.helpers import cancel, capture, get, post, problem, serve_env
from tests.support.jobs import record
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer
from tests.support.serve import ServeProcess


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, with its append-only file: it is stopped and started again."""
    server = RedisServer(appendonly=True)
    yield server
    server.close()


def test_while_redis_is_down_every_route_is_503_with_retry_after_and_nothing_is_written(own_redis: RedisServer) -> None:
    with ServeProcess(own_redis.url, env=serve_env()) as serve:
        assert post(serve, "/v1/jobs", cancel("before")).status_code == 202
        own_redis.stop()
        try:
            answers = [post(serve, "/v1/jobs", capture("during")), post(serve, "/v1/jobs/batch", {"jobs": [cancel("batch")]}),
                       get(serve, "/v1/jobs/cancel:store-a:before"), get(serve, "/v1/trips/store-a/before")]
            served_meanwhile = serve.request("GET", "/healthz").status_code
            readiness = serve.request("GET", "/readyz")
        finally:
            own_redis.start()

        for answer in answers:
            refused = problem(answer, 503)
            assert answer.headers["Retry-After"] == "5"
            assert refused["type"] == "urn:payq:problem:unavailable" and "Redis" in refused["detail"]
        assert served_meanwhile == 200, "the process serves on (alive: no restart); only what needs Redis is refused"
        not_ready = problem(readiness, 503)
        assert not_ready["type"] == "urn:payq:problem:not-ready" and readiness.headers["Retry-After"] == "5", \
            "not ready: a load balancer takes the instance out of rotation"
        assert wait_for(lambda: serve.request("GET", "/readyz").status_code == 200, timeout=15, what="/readyz after Redis is back")
        rdb: redis.Redis = own_redis.client()
        assert record(rdb, "cancel:store-a:before")["op"] == "cancel", "what was taken before is kept"
        assert (record(rdb, "capture:store-a:during"), record(rdb, "cancel:store-a:batch")) == ({}, {})
        assert lanes.depths(rdb, ["payments.capture"]) == {"payments.capture": 0}

        again = post(serve, "/v1/jobs", capture("during"))
        assert (again.status_code, again.json()) == (202, {"jobId": "capture:store-a:during", "created": True})
        assert "cannot reach Redis" in serve.output() and "Traceback" not in serve.output()
