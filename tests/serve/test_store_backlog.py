"""PAYQ_STORE_BACKLOG_CAP: a store with that many jobs open gets 429 with Retry-After; the other stores are answered as always."""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests.serve.helpers import STORE_B, TOKEN_B, capture, errors, post, problem, serve_env
from tests.support.jobs import record, wait_for_state
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess


def test_a_store_at_its_cap_gets_429_and_the_others_202_until_its_jobs_settle(
    redis_url: str, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    with ServeProcess(redis_url, env=serve_env(PAYQ_STORE_BACKLOG_CAP="3")) as serve:
        first = post(serve, "/v1/jobs/batch", {"jobs": [capture(trip=f"t{i}") for i in range(3)]})
        over = post(serve, "/v1/jobs", capture(trip="t3"))
        other = post(serve, "/v1/jobs", capture(trip="t3", store=STORE_B), token=TOKEN_B)
        same_again = post(serve, "/v1/jobs", capture(trip="t0"))

        assert first.status_code == 202
        refused = problem(over, 429)
        assert refused["type"] == "urn:payq:problem:store-backlog"
        assert errors(refused) == [(None, "storeId", "store 'store-a' has 3 jobs open and may have at most 3: 1 more would pass it")]
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        assert record(rdb, "capture:store-a:t3") == {}, "nothing was written"
        assert other.status_code == 202, "another store is not held by store-a's cap"
        assert same_again.status_code == 429, "a job sent again counts as new: the cap is checked before the script knows"

        start_worker()
        for i in range(3):
            wait_for_state(rdb, f"capture:store-a:t{i}", "succeeded")
        after = post(serve, "/v1/jobs", capture(trip="t3"))
        assert after.status_code == 202, "settled jobs no longer count"
