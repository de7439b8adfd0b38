"""A rolling upgrade: what the previous payq wrote to Redis runs under this one, once.

Before issue 29 workers took messages with kombu's BRPOP and kept no
in-flight list, producers woke nobody (no ``payq:wake``), and the lost-message
sweep watched ``payq:active``. This test writes that state by hand, as those
versions' scripts left it: a message queued by an old producer, a job begun
by an old worker that died since (its lease lapsed, its message gone with it),
a deferred job now due; then starts a worker of this version. Before issue
33 BEGIN adopted a message sent around payq's producer (``send_task``) under
Celery's own id, and dead-lettered one with a Decimal amount as
``internal-error``. Before issue 32 no record or message had a
``traceparent``: such jobs run once under a worker that traces too. And a trip
it settled (issue 35 compacts what a settled job keeps): its full record still
reads, resends and copies of it do nothing, a refund is checked against its books.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

import redis

from config.settings import Settings
from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind
from tasks import tracing
from tasks.jobs.messages import build_message
from tasks.producer import Producer, prepare
from tasks.redis import keys
from tasks.states import DeadLetterReason
from tasks.store import lanes
from tasks.store.deadletters import DeadLetter, DeadLetterStore
from tests.support.jobs import USD_1, calls, capture_directly, record, wait_for_state
from tests.support.names import queue_of
from tests.support.otlp import otel_env, otlp_receiving
from tests.support.payq_cli import PayqRunner, invoke
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess

OLD_WORKER = "old-host.4242.abcdef"


def old_record(rdb: redis.Redis, trip: str, **fields: str | float) -> str:
    """A capture's record as the previous version's enqueue wrote it (and ``fields`` as its later steps did); its id."""
    job = prepare("capture", {"storeId": "s-old", "shoppingTripId": trip, "amount": USD_1})
    now = time.time()
    rdb.hset(keys.job(job.job_id), mapping={"op": job.operation.value, "kwargs": json.dumps(job.kwargs), "attempts": 0,
                                             "enqueued_at": now, "state": "queued", "updated_at": now, **fields})
    rdb.zadd(keys.ACTIVE, {job.job_id: now})
    return job.job_id


def test_a_queue_a_lapsed_lease_and_a_deferral_left_by_the_previous_version_run_once(
    rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess], producer: Producer,
) -> None:
    redis_now = float(rdb.time()[0])
    # queued by an old producer: a message on its queue, and no entry in payq:wake to wake anyone
    queued = old_record(rdb, "t-queued")
    rdb.lpush(queue_of("capture"), build_message(Operation.CAPTURE, queued, json.loads(record(rdb, queued)["kwargs"])))
    # begun by an old worker, SIGKILLed since: running under its claim, its lease lapsed, its message nowhere (it had no in-flight list)
    begun = old_record(rdb, "t-begun", state="running", attempts=1, holder=OLD_WORKER, claim="c-old", worker="old@host")
    rdb.zadd(keys.LEASES, {begun: redis_now - 30})
    rdb.zadd(keys.WORKERS, {OLD_WORKER: redis_now - 40})
    # deferred by an old worker, now due
    deferred = old_record(rdb, "t-deferred", state="deferred", attempts=1, deferred_until=time.time())
    rdb.zadd(keys.DEFERRED, {deferred: time.time()})
    assert not rdb.exists(keys.WAKE) and not rdb.exists(keys.INFLIGHT)
    # and beside them, a capture this version enqueued: in its store's lane, while the old one waits in the queue's own list
    fresh = producer.enqueue_capture(storeId="s-new", shoppingTripId="t-new", amount=USD_1)
    assert lanes.stores_waiting(rdb, [queue_of("capture")]) == {queue_of("capture"): ["s-new"]} and rdb.llen(queue_of("capture")) == 1

    start_worker()

    for job_id in (queued, deferred, fresh):
        wait_for_state(rdb, job_id, "succeeded", timeout=30)
    # the old worker's job waits for its lease to be judged: by a worker that has beaten steadily for a lease
    wait_for_state(rdb, begun, "succeeded", timeout=60)
    wait_for(lambda: len(calls(api, Operation.FEEDBACK)) == 4, what="the four captures' reports")
    trips = sorted(json.loads(entry["body"])["shoppingTripId"] for entry in calls(api, Operation.CAPTURE))
    assert trips == ["t-begun", "t-deferred", "t-new", "t-queued"], "each capture called once"
    assert record(rdb, begun)["recovered_from"] == OLD_WORKER
    # settled under this version: compacted (tasks/jobs/settled.py), its request read back whole
    assert "kwargs" not in rdb.hgetall(keys.job(queued)) and json.loads(record(rdb, queued)["kwargs"])["shoppingTripId"] == "t-queued"



def test_a_send_task_message_the_previous_version_adopted_or_dead_lettered_runs_once_under_this_one(
    redis_url: str, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    now = time.time()
    # Before issue 33 BEGIN adopted a message that had no record: recorded under Celery's own id (enqueued_at
    # and all), outside the trip's books. One such job deferred since, now due: it runs as it would have, once.
    adopted = str(uuid.uuid4())
    rdb.hset(keys.job(adopted), mapping={
        "op": "capture", "kwargs": json.dumps({"storeId": "s-old", "shoppingTripId": "t-adopted", "amount": USD_1}),
        "attempts": 1, "enqueued_at": now, "state": "deferred", "updated_at": now, "deferred_until": now})
    rdb.zadd(keys.DEFERRED, {adopted: now})
    # A Decimal capture it dead-lettered as internal-error (BEGIN's json.dumps raised), as its dead_letter wrote it
    bare = str(uuid.uuid4())
    failure = Failure(FailureKind.INTERNAL, error_type="TypeError", detail="Object of type Decimal is not JSON serializable")
    assert DeadLetterStore(rdb, 86400, 86400).add(DeadLetter.of(
        failure, id=bare, operation=Operation.CAPTURE, task="payments.capture", reason=DeadLetterReason.INTERNAL_ERROR,
        kwargs={"storeId": "s-old", "shoppingTripId": "t-decimal", "amount": {"amount": Decimal("21.00"), "code": "USD"}},
        attempts=0, dead_at=now, worker="old@host"))

    start_worker()
    wait_for_state(rdb, adopted, "succeeded")
    replayed = invoke(redis_url, "dlq", "replay", bare)
    assert replayed.code == 0, replayed.stderr

    # replayed under this version, it is enqueued through the rules as the job it is, and the replayed entry names it
    wait_for_state(rdb, "capture:s-old:t-decimal", "succeeded")
    assert json.loads(wait_for_state(rdb, bare, "succeeded")["result"]) == {"enqueuedAs": "capture:s-old:t-decimal", "created": True}
    wait_for(lambda: len(calls(api, Operation.FEEDBACK)) == 2, what="the two captures' reports")
    captured = sorted((json.loads(e["body"], parse_float=Decimal)["shoppingTripId"], str(json.loads(e["body"], parse_float=Decimal)["amount"]["amount"]))
                      for e in calls(api, Operation.CAPTURE))
    assert captured == [("t-adopted", "1.00"), ("t-decimal", "21.00")], "each capture called once, with its exact amount"
    assert rdb.hlen(keys.DEAD_LETTERS) == 0


def test_jobs_the_previous_version_enqueued_without_a_trace_run_once_under_a_worker_that_traces(
    rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    # records and messages from before traces were kept: no traceparent on either; one queued, one deferred and due
    queued = old_record(rdb, "t-untraced-queued")
    rdb.lpush(queue_of("capture"), build_message(Operation.CAPTURE, queued, json.loads(record(rdb, queued)["kwargs"])))
    deferred = old_record(rdb, "t-untraced-deferred", state="deferred", attempts=1, deferred_until=time.time())
    rdb.zadd(keys.DEFERRED, {deferred: time.time()})

    with otlp_receiving() as otlp:
        start_worker(env=otel_env(otlp))
        for job_id in (queued, deferred):
            wait_for_state(rdb, job_id, "succeeded", timeout=30)
        # each delivery is a trace of its own (there is none to join), and says which job it ran
        wait_for(lambda: {s.attributes.get(tracing.JOB_ID) for s in otlp.received() if s.name == "payq.task capture"} == {queued, deferred},
                 what="each old job's delivery span")
        tasks = [s for s in otlp.received() if s.name == "payq.task capture"]
    assert all(s.parent_id == "" for s in tasks)
    assert "traceparent" not in record(rdb, queued) and "traceparent" not in record(rdb, deferred)
    trips = sorted(json.loads(entry["body"])["shoppingTripId"] for entry in calls(api, Operation.CAPTURE))
    assert trips == ["t-untraced-deferred", "t-untraced-queued"], "each capture called once"


def test_a_trip_the_previous_version_settled_reads_as_it_did_and_a_copy_or_resend_of_it_does_nothing(
    rdb: redis.Redis, api: SandboxProcess, producer: Producer, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
    settings: Settings,
) -> None:
    capture_directly(settings, "s-old", "t-old", USD_1)  # the API's side of the capture the previous version made
    # as the previous version left a settled trip: full records (kwargs, result, who ran it), books kept as long as them
    settled_at = int(time.time()) - 3600
    capture = old_record(rdb, "t-old", state="succeeded", attempts=1, settled_at=settled_at, worker="old@host", holder=OLD_WORKER,
                         claim="c-old", delivery="d-old", first_attempt_at=settled_at, last_attempt_at=settled_at,
                         result=json.dumps({"reportJobId": f"feedback:s-old:t-old:{settled_at}", "settledAt": settled_at}))
    rdb.zrem(keys.ACTIVE, capture)
    rdb.hset(keys.trip("s-old", "t-old"), mapping={"capture": capture, "capture_cents": 100, "currency": "USD", "captured_at": settled_at})
    rdb.expire(keys.trip("s-old", "t-old"), 30 * 86400)
    before = rdb.hgetall(keys.job(capture))

    shown = json.loads(payq("job", capture, "--json").stdout)
    assert (shown["state"], shown["worker"], shown["reportJobId"]) == ("succeeded", "old@host", f"feedback:s-old:t-old:{settled_at}")
    assert shown["request"] == {"storeId": "s-old", "shoppingTripId": "t-old", "amount": USD_1}
    assert producer.enqueue_capture(storeId="s-old", shoppingTripId="t-old", amount=USD_1) == capture  # a no-op
    trip = json.loads(payq("trip", "s-old", "t-old", "--json").stdout)  # its books name the capture in full, as they did
    assert (trip["capture"]["jobId"], trip["captured"]) == (capture, "1.00")
    start_worker()
    rdb.lpush(queue_of("capture"), build_message(Operation.CAPTURE, capture, json.loads(before["kwargs"])))
    wait_for(lambda: not sum(lanes.depths(rdb, [queue_of("capture")]).values()) and not rdb.zcard(keys.LEASES), what="the copy to be taken and turned away")
    refund = producer.enqueue_refund(storeId="s-old", shoppingTripId="t-old", amount=USD_1, refundReasonCode="OTHER")
    wait_for_state(rdb, refund, "succeeded")  # checked against the old books, then run

    assert len(calls(api, Operation.CAPTURE)) == 1 and rdb.hgetall(keys.job(capture)) == before, "no call but the direct one, the record as it was"
