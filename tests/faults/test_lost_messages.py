"""Jobs whose message was lost are published again, and only they.

kombu's Redis transport takes a message off its list (BRPOP) and keeps it in
the worker's memory (payq runs it without an unacknowledged set in Redis); a
worker killed before BEGIN stamps the job takes the message with it. Scenarios 1 and 2 lost jobs that way (1
job in ~6 Redis restarts, 1-2 jobs in some runs of 3 SIGKILLs under load). Since
21d7091 the mover re-publishes a job left queued, its queue empty, for longer
than the task time limit + the lease + 10 s (``revive_lost``;
``config.celery.lost_after`` says why; until issue 21, the visibility timeout
+ 35 s). It first re-published jobs merely waiting behind a backlog too, next
to their message, and both copies ran (seen in scenario 1 on a busy machine):
now a queued job is re-published only once its queue is empty, and a copy
taken while another worker holds the job does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from config.celery import lost_after
from config.settings import Settings
from tasks.producer import Producer, prepare
from tests.faults.audit import leftovers, records, revived
from tests.support.fault_redis import FaultRedis
from tests.support.fault_workers import FaultWorker
from tests.support.names import queue_of
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from workers.housekeeping import HOUSEKEEPING_EVERY
from workers.runtime import Runtime

# short HTTP timeouts: a short task time limit, and so a short wait for revive_lost
ENV = {"PAYQ_HTTP_CONNECT_TIMEOUT": "1", "PAYQ_HTTP_READ_TIMEOUT": "4"}
USD = {"amount": "3.00", "code": "USD"}


def revive_after(env: dict[str, str]) -> float:
    """How long revive_lost leaves a job alone before it counts as lost, for workers with ``env``."""
    return lost_after(Settings(**{name.removeprefix("PAYQ_").lower(): value for name, value in env.items()}))


@pytest.mark.slow
@pytest.mark.timeout(600)  # pyproject's 300 s is too short on a machine other runs keep busy
def test_a_job_whose_message_was_fetched_but_never_recorded_still_runs(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
) -> None:
    api = make_sandbox("--auto-register")
    rdb = private_redis.client()
    job_id = Producer(Settings(redis_url=private_redis.url)).enqueue_capture(storeId="s-lost", shoppingTripId="t-fetched", amount=USD)
    # exactly what a worker's BRPOP does; its next command, recording the message as unacknowledged, never comes
    assert rdb.rpop(queue_of("capture")) is not None
    worker = make_worker(private_redis.url, api.url, env=ENV, concurrency=1)

    wait_for(lambda: records(rdb, [job_id], "state")[0]["state"] == "succeeded", timeout=revive_after(ENV) + HOUSEKEEPING_EVERY + 20,
             what="the job whose message was lost to run anyway")
    wait_for(lambda: len(api.requests()) >= 2 and not leftovers(rdb), what="its payment-status report")
    assert [(e["path"], e["status"]) for e in api.requests()] == [  # the capture and its report, once each
        ("/v1/capture/charge", 200), ("/v1/feedback/payment-status", 200)]
    assert revived([worker.log()]) == 1


@pytest.mark.slow
@pytest.mark.timeout(600)  # pyproject's 300 s is too short on a machine other runs keep busy
def test_a_job_still_waiting_in_its_queue_past_the_revive_cutoff_runs_once(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
) -> None:
    api = make_sandbox("--auto-register", "--latency-ms", "1000")  # both deliveries are in flight at once
    rdb = private_redis.client()
    report = prepare("feedback", {"storeId": "s-backlog", "shoppingTripId": "t-waiting", "totalAmount": USD,
                                  "settledAmount": USD, "paymentStatusTime": 1_700_000_000})
    Producer(Settings(redis_url=private_redis.url)).publish([report])
    # What the mover of a worker does when it finds the job an hour later, its message still in the queue
    # (workers down that long, or a backlog that long): the same call, with the clock an hour on.
    Runtime.build(Settings(redis_url=private_redis.url)).jobs.revive_lost(time.time() + 3600, revive_after(ENV), 100)
    make_worker(private_redis.url, api.url, env=ENV, concurrency=2)

    wait_for(lambda: records(rdb, [report.job_id], "state")[0]["state"] == "succeeded" and not leftovers(rdb),
             timeout=60, what="the report to be sent and every message acknowledged")
    assert len(api.trip("s-backlog", "t-waiting")["reports"]) == 1, "the payment-status report was sent twice"
