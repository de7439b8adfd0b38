"""The intake counts its answers to /v1 by HTTP status in Redis (``payq_intake_answers_total``), outages' 503s included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tasks.redis import keys
from tests.serve.helpers import capture, get, post, serve_env
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer
from tests.support.serve import ServeProcess


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own: its payq serve's counts are its alone, and it is stopped and started again."""
    server = RedisServer(appendonly=True)
    yield server
    server.close()


def answers(redis_server: RedisServer) -> dict[str, int]:
    """``payq:intake:answers``: status -> count."""
    return {status: int(n) for status, n in redis_server.client().hgetall(keys.INTAKE_ANSWERS).items()}


def test_every_v1_answer_is_counted_by_status_and_health_checks_are_not(own_redis: RedisServer) -> None:
    with ServeProcess(own_redis.url, env=serve_env()) as serve:
        assert post(serve, "/v1/jobs", capture("a")).status_code == 202
        assert post(serve, "/v1/jobs", capture("b")).status_code == 202
        assert post(serve, "/v1/jobs", capture("a")).status_code == 200, "the same job again: already there"
        assert post(serve, "/v1/jobs", capture("c"), token=None).status_code == 401
        assert post(serve, "/v1/jobs", capture("d", amount="ten")).status_code == 422
        assert get(serve, "/v1/nowhere").status_code == 404
        assert serve.request("GET", "/healthz").status_code == 200
        assert serve.request("GET", "/readyz").status_code == 200

        expected = {"202": 2, "200": 1, "401": 1, "422": 1, "404": 1}
        wait_for(lambda: answers(own_redis) == expected, timeout=15, what=f"the answers counted: {expected}")


def test_answers_given_while_redis_is_away_are_counted_once_it_is_back(own_redis: RedisServer) -> None:
    with ServeProcess(own_redis.url, env=serve_env()) as serve:
        assert post(serve, "/v1/jobs", capture("before")).status_code == 202
        wait_for(lambda: answers(own_redis) == {"202": 1}, timeout=15, what="the first answer counted")
        own_redis.stop()
        try:
            refused = [post(serve, "/v1/jobs", capture(f"during-{i}")).status_code for i in range(3)]
        finally:
            own_redis.start()
        assert refused == [503, 503, 503]

        wait_for(lambda: answers(own_redis) == {"202": 1, "503": 3}, timeout=20, what="the outage's answers counted")


def test_a_clean_stop_adds_the_answers_not_yet_counted(own_redis: RedisServer) -> None:
    serve = ServeProcess(own_redis.url, env=serve_env())
    with serve:
        for trip in ("a", "b", "c"):
            assert post(serve, "/v1/jobs", capture(trip)).status_code == 202
    assert answers(own_redis) == {"202": 3}, "counted as it stopped (SIGTERM), before its next flush was due"
