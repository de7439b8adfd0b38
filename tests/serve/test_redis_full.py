"""A full Redis (maxmemory reached, noeviction): every enqueue is refused naming the cause, and it is seen coming.

A real redis-server started with a tiny ``maxmemory`` and ``noeviction`` is
filled until it refuses writes. The producer raises :class:`RedisFull`,
``payq enqueue`` exits 75 and the HTTP intake answers 503 with Retry-After,
each saying Redis is full and what makes room; nothing is written.
Before that, near the limit, ``/readyz`` (still ready) and ``payq stats``
warn. Once room is made, the same job is taken.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from config.settings import Settings
from payapi.errors import RedisFull
from tasks.producer import Producer
from tasks.redis import keys
from tests.serve.helpers import capture, post, problem, serve_env
from tests.support.payq_cli import run_payq
from tests.support.redis_server import RedisServer
from tests.support.serve import ServeProcess

FILLER = 64 * 1024  # bytes a filler key holds


@pytest.fixture
def tiny_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own with maxmemory 4 MB and noeviction."""
    server = RedisServer(extra_args=("--maxmemory", "4mb", "--maxmemory-policy", "noeviction"))
    yield server
    server.close()


def fill(client: redis.Redis) -> int:
    """Write filler keys until Redis refuses one; how many it took."""
    for n in range(1000):
        try:
            client.set(f"filler:{n}", b"x" * FILLER)
        except redis.OutOfMemoryError:
            return n
    raise AssertionError("Redis took 64 MB in a 4 MB maxmemory")


def test_a_full_redis_refuses_every_enqueue_naming_the_cause_and_is_warned_of_before(tiny_redis: RedisServer) -> None:
    client = tiny_redis.client()
    filled = fill(client)
    producer = Producer(Settings(redis_url=tiny_redis.url, redis_retry_seconds=0.3))

    with pytest.raises(RedisFull, match="maxmemory"):
        producer.enqueue_capture(storeId="store-a", shoppingTripId="py", amount={"amount": "1.00", "code": "USD"})
    ran = run_payq(tiny_redis.url, "enqueue", "capture", "--store-id", "store-a", "--trip-id", "cli", "--amount", "1.00", "--currency", "USD")
    assert ran.returncode == 75, ran.stderr
    assert "Redis is full" in ran.stderr and "maxmemory" in ran.stderr and "Traceback" not in ran.stderr
    stats = run_payq(tiny_redis.url, "stats")
    assert stats.returncode == 0, stats.stderr
    assert "warning: Redis is" in stats.stdout and "full" in stats.stdout

    with ServeProcess(tiny_redis.url, env=serve_env()) as serve:
        refused = post(serve, "/v1/jobs", capture("http"))
        body = problem(refused, 503)
        assert refused.headers["Retry-After"] == "5"
        assert "Redis is full" in body["detail"] and "maxmemory" in body["detail"]
        ready = serve.request("GET", "/readyz")
        assert ready.status_code == 200 and "full" in ready.json()["warning"], ready.text

        assert client.keys(f"{keys.JOB_PREFIX}*") == [], "nothing was written"
        client.delete(*[f"filler:{n}" for n in range(filled)])
        taken = post(serve, "/v1/jobs", capture("http"))
        assert (taken.status_code, taken.json()["created"]) == (202, True)
        assert "warning" not in serve.request("GET", "/readyz").json()
    assert producer.enqueue_capture(storeId="store-a", shoppingTripId="py", amount={"amount": "1.00", "code": "USD"}) == "capture:store-a:py"
