"""A message a worker fetched and never began runs, within about a lease of the worker's death, however long its queue.

kombu's Redis transport took a message off its list (BRPOP) into the worker's
memory; a worker killed before BEGIN took it along. Scenarios 1 and 2 lost
jobs that way until 21d7091, when a sweep began re-publishing a job left
queued, its queue empty, for the task time limit + a lease + 10 s (63 s): a
killed worker's unbegun messages then waited that long, and as long as any
backlog lasted. Since issue 29 the worker's own fetch moves each message into
its in-flight list in Redis (``workers/fetch.py``), and a live worker gives a
dead one's back as soon as its heartbeat is a lease old.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from config.settings import Settings
from tasks.producer import Producer
from tasks.redis import keys, scripts
from tasks.store import lanes
from tasks.store.inflight import fetch_call
from tests.faults.audit import STRANDED_AFTER, audit_captures, capture_jobs, first_call_after, given_back, leftovers, records, settle
from tests.faults.test_killed_workers import BACK_WITHIN, held_by, steady, worker_id
from tests.support.fault_redis import FaultRedis
from tests.support.fault_workers import FaultWorker
from tests.support.names import queue_of
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess

USD = {"amount": "3.00", "code": "USD"}
LEASE = Settings.model_fields["lease_seconds"].default


@pytest.mark.slow
@pytest.mark.timeout(600)  # pyproject's 300 s is too short on a machine other runs keep busy
def test_a_message_a_worker_fetched_and_died_with_runs_once_a_live_worker_sees_it_dead(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
) -> None:
    api = make_sandbox("--auto-register")
    rdb = private_redis.client()
    worker = make_worker(private_redis.url, api.url, concurrency=2, options=("-Q", queue_of("feedback")))
    wait_for(lambda: steady(rdb, worker_id(rdb, worker)), timeout=60, interval=0.5, what="the worker to beat steadily for a lease")
    job_id = Producer(Settings(redis_url=private_redis.url)).enqueue_capture(storeId="s-lost", shoppingTripId="t-fetched", amount=USD)
    # exactly what a worker's fetch does (the live one takes no captures); the fetcher dies before BEGIN, never having beaten
    call_keys, args = fetch_call("gone.1.abc", [queue_of("capture")], 1, [])
    rdb.eval(scripts.source("fetch"), len(call_keys), *call_keys, *args)
    assert lanes.depths(rdb, [queue_of("capture")])[queue_of("capture")] == 0 and rdb.llen(keys.inflight("gone.1.abc", queue_of("capture"))) == 1

    wait_for(lambda: rdb.llen(queue_of("capture")) == 1, timeout=LEASE + 10, what="the dead fetcher's message back on its queue")
    capture_worker = make_worker(private_redis.url, api.url, concurrency=2, options=("-Q", queue_of("capture")))
    wait_for(lambda: records(rdb, [job_id], "state")[0]["state"] == "succeeded" and not leftovers(rdb), timeout=60,
             what="the capture and its report")
    assert [(e["path"], e["status"]) for e in api.requests()] == [("/v1/capture/charge", 200), ("/v1/feedback/payment-status", 200)]
    assert given_back([worker.log(), capture_worker.log()]) == (1, 0)


@pytest.mark.slow
@pytest.mark.timeout(600)  # pyproject's 300 s is too short on a machine other runs keep busy
def test_a_killed_workers_fetched_and_unbegun_messages_are_called_again_within_12_s(
    private_redis: FaultRedis, make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker],
) -> None:
    api = make_sandbox("--auto-register", "--latency-ms", "3000")
    rdb = private_redis.client()
    # the survivor takes no captures: it only judges the dead one (it has beaten steadily for a lease)
    survivor = make_worker(private_redis.url, api.url, concurrency=2, options=("-Q", queue_of("feedback")))
    wait_for(lambda: steady(rdb, worker_id(rdb, survivor)), timeout=60, interval=0.5, what="the survivor to beat steadily")
    # two threads and four messages each: the victim holds eight captures, two of them begun, six waiting for a thread
    victim = make_worker(private_redis.url, api.url, concurrency=2, options=("-Q", queue_of("capture"), "--prefetch-multiplier", "4"))
    victim_id = worker_id(rdb, victim)
    amounts = {f"t{i}": Decimal("3.00") for i in range(12)}
    Producer(Settings(redis_url=private_redis.url)).publish(capture_jobs("s-held", amounts))
    capture_ids = [f"capture:s-held:{t}" for t in amounts]
    wait_for(lambda: len(held_by(rdb, victim_id)) == 8 and rdb.zcard(keys.LEASES) == 2, timeout=30, what="the victim holding eight")

    held = held_by(rdb, victim_id)
    begun = {job_id for job_id, r in zip(capture_ids, records(rdb, capture_ids, "state"), strict=True) if r["state"] == "running"}
    victim.kill()
    killed_at = time.time()
    taker = make_worker(private_redis.url, api.url, concurrency=16, options=("-Q", queue_of("capture")))
    settled = settle(rdb, capture_ids, timeout=120, quiet=STRANDED_AFTER)

    audit = audit_captures(api, rdb, "s-held", amounts)
    after = {job_id: first_call_after(audit.capture_calls[job_id.split(":")[2]], killed_at) for job_id in held}
    assert settled.stuck is None and settled.stranded == {} and audit.lost == {}
    assert all(at is not None and at - killed_at < BACK_WITHIN for at in after.values()), after
    assert given_back([survivor.log(), taker.log()]) == (6, 2)
    assert audit.repeated("capture").keys() <= {job_id.split(":")[2] for job_id in begun}, "only calls on the wire at the kill"
