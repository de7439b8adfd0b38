"""Outcome notifications: one signed event per job that succeeds or is dead-lettered, delivered from the outbox stream.

The receiver is a real HTTP server in the test (tests/support/receiver.py)
answering as each test scripts it. Signatures are checked by hand here, with
HMAC-SHA256 over ``id.timestamp.body`` as the Standard Webhooks spec defines
it, not with the library payq signs with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests

from config.settings import Settings
from payapi.operations import Operation
from payq.views import iso
from tasks.jobs.messages import build_message
from tasks.notify.client import delivery_slots
from tasks.notify.outbox import Outbox
from tasks.notify.schedule import FAN_OUT
from tasks.producer import Producer
from tasks.redis import keys
from tasks.store import lanes
from tests.support.jobs import USD_1, record, wait_for_state
from tests.support.names import queue_of
from tests.support.payq_cli import PayqRunner
from tests.support.polling import wait_for
from tests.support.receiver import Answer, Received, receiving
from tests.support.sandbox import SandboxProcess
from tests.support.worker import DEFAULT_ENV, WorkerProcess

SECRET = "whsec_" + base64.b64encode(b"payq-test-secret-of-thirty-two!!").decode()


def notify_env(url: str, **extra: str) -> dict[str, str]:
    return {"PAYQ_NOTIFY_URL": url, "PAYQ_NOTIFY_SECRET": SECRET, **extra}


def signed_correctly(delivery: Received) -> bool:
    """The Standard Webhooks check, by hand: base64(HMAC-SHA256(key, id.timestamp.body)) among the v1 signatures."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    content = f"{delivery.headers['webhook-id']}.{delivery.headers['webhook-timestamp']}.".encode() + delivery.body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return any(sig.split(",", 1) == ["v1", expected] for sig in delivery.headers["webhook-signature"].split())


def events(deliveries: list[Received], kind: str | None = None) -> list[dict[str, Any]]:
    found = [d.json() for d in deliveries]
    return [e for e in found if kind is None or e["type"] == kind]


def test_every_success_is_notified_once_signed_per_standard_webhooks(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    with receiving() as receiver:
        start_worker(env=notify_env(receiver.url))
        capture = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
        wait_for_state(rdb, capture, "succeeded")
        report = json.loads(record(rdb, capture)["result"])["reportJobId"]
        wait_for(lambda: len(receiver.delivered()) == 2, timeout=30, what="the capture's and its report's notifications")

        deliveries = receiver.delivered()
        assert all(signed_correctly(d) for d in deliveries)
        assert all(abs(int(d.headers["webhook-timestamp"]) - d.arrived) < 60 for d in deliveries)
        by_job = {e["data"]["jobId"]: e for e in events(deliveries)}
        assert set(by_job) == {capture, report}
        event = by_job[capture]
        assert event["type"] == "job.succeeded"
        assert event["data"] == {
            "jobId": capture, "operation": "capture", "storeId": "s1", "shoppingTripId": "t1", "state": "succeeded",
            "result": {"reportJobId": report, "settledAt": iso(json.loads(record(rdb, capture)["result"])["settledAt"])}, "status": 200,
        }
        assert [d.headers["webhook-id"] for d in deliveries if d.json()["data"]["jobId"] == capture] == [event["id"]]
        assert event["timestamp"].endswith("Z")
        wait_for(lambda: rdb.zcard(keys.OUTBOX_PENDING) == 0, what="the outbox to be empty: both events settled")
        assert lanes.depths(rdb, ["payments.notify"])["payments.notify"] == 0 and not rdb.exists(keys.job(f"notify:{event['id']}")), "no Celery job per event"


def test_a_job_delivered_twice_still_makes_one_event(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    with receiving() as receiver:
        worker = start_worker(env=notify_env(receiver.url))
        cancel = producer.enqueue_cancel(storeId="s1", shoppingTripId="t2")
        wait_for_state(rdb, cancel, "succeeded")
        wait_for(lambda: len(receiver.delivered()) == 1, what="the cancel's notification")
        # the same job's message again, as the lost-message sweep would publish it
        kwargs = json.loads(record(rdb, cancel)["kwargs"])
        rdb.lpush(queue_of("cancel"), build_message(Operation.CANCEL, cancel, kwargs))
        wait_for(lambda: f"{cancel}: delivered again" in worker.log(), what="the copy to be taken and turned away")
        time.sleep(1.0)  # room for a second event to be sent, were one made: it must not be

        assert [e["data"]["jobId"] for e in events(receiver.delivered())] == [cancel]


def test_a_receiver_answering_503_with_retry_after_gets_the_same_event_again_after_it(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    with receiving([Answer(503, {"Retry-After": "2"})]) as receiver:
        start_worker(env=notify_env(receiver.url))
        cancel = producer.enqueue_cancel(storeId="s1", shoppingTripId="t3")
        wait_for(lambda: len(receiver.delivered()) == 1, timeout=30, what="the retried notification")

        first, second = receiver.all()
        assert (first.status, second.status) == (503, 200)
        assert first.headers["webhook-id"] == second.headers["webhook-id"], "the receiver's idempotency key is stable"
        # the pause runs from when payq read the answer: after the request arrived, maybe before the receiver noted it answered
        assert second.arrived - first.arrived >= 2.0
        assert signed_correctly(second)
        assert events([second])[0]["data"]["jobId"] == cancel


THROTTLE = 60.0  # seconds the receiver answers 429 Retry-After: 3 (issue #29)
IN_FLIGHT = 0.5  # seconds after a 429's answer within which a POST begun before payq read it may still arrive


@pytest.mark.slow
def test_a_receiver_asking_for_time_gets_every_event_once_and_deliveries_resume_within_1_s_of_each_pause_s_end(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    # every setting at its default, and the plain worker command (no --pool, no --concurrency: one delivery thread)
    with receiving() as receiver:
        worker = start_worker(env=notify_env(receiver.url, **DEFAULT_ENV), pool=None, concurrency=None)
        throttled_until = receiver.answer_for(THROTTLE, Answer(429, {"Retry-After": "3"}))
        cancels = [producer.enqueue_cancel(storeId="s1", shoppingTripId=f"q{i}") for i in range(20)]
        wait_for(lambda: len(receiver.delivered()) >= len(cancels), timeout=THROTTLE + 60, interval=0.2, what="every event, after the 429s")
        wait_for(lambda: rdb.zcard(keys.OUTBOX_PENDING) == 0, what="the outbox to be empty")

        answered = receiver.all()
        delivered = events(receiver.delivered())
        assert sorted(e["data"]["jobId"] for e in delivered) == sorted(cancels), "every event, each once"
        assert rdb.hlen(keys.DEAD_LETTERS) == 0, "no dead letter: a request for time uses no attempt"
        throttled = [a for a in answered if a.status == 429]
        assert len(throttled) >= THROTTLE / 3 - 5 and all(a.arrived < throttled_until for a in throttled)
        for asked in throttled:
            # no delivery begins while the pause lasts (3 s from the answer), but those already in flight when the 429 came
            # back (a receiver slower than 20 ms an answer gets several POSTs at once: tasks.notify.schedule.posts_at_once)
            begun = [f for f in answered if asked.answered + IN_FLIGHT < f.arrived < asked.arrived + 3]
            assert begun == [], (asked, begun)
            if any(asked.answered < other.answered and other.arrived <= asked.answered + IN_FLIGHT for other in throttled):
                continue  # another POST in flight came back 429 later: the pause ends 3 s after that one
            # deliveries again within 1 s of the pause's end
            assert any(asked.arrived + 3 <= f.arrived <= asked.answered + 3 + 1 for f in answered), (asked, answered)
        log = worker.log()
        assert log.count("the receiver asked for quiet") == 1 and log.count("the receiver takes deliveries again") == 1
        assert log.count("still asks for quiet") <= 2, "a line a minute while it lasts, not one per 429"


def test_outbox_entries_the_previous_main_wrote_are_delivered(
    api: SandboxProcess, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    # a stream entry and a retry-set entry exactly as the previous main wrote them (lua/lib/outbox.lua, Entry.retry_json)
    body = ('{"id":"cancel:s1:old1:succeeded","type":"job.succeeded","timestamp":"2026-01-05T10:00:00.000000Z",'
            '"data":{"jobId":"cancel:s1:old1","operation":"cancel","storeId":"s1","shoppingTripId":"old1","state":"succeeded",'
            '"result":{},"status":200}}')
    now = time.time()
    Outbox(rdb).ensure_group()
    rdb.xadd(keys.OUTBOX, {"id": "cancel:s1:old1:succeeded", "body": body, "job": "cancel:s1:old1", "attempts": 0, "at": now - 60})
    rdb.zadd(keys.OUTBOX_PENDING, {"cancel:s1:old1:succeeded": now - 60})
    retried = body.replace("old1", "old2")
    rdb.zadd(keys.OUTBOX_RETRY, {json.dumps({"id": "cancel:s1:old2:succeeded", "body": retried, "job": "cancel:s1:old2", "attempts": 3,
                                             "at": now - 3600}): now - 1})
    rdb.zadd(keys.OUTBOX_PENDING, {"cancel:s1:old2:succeeded": now - 3600})

    with receiving() as receiver:
        start_worker(env=notify_env(receiver.url))
        wait_for(lambda: len(receiver.delivered()) == 2, what="both events")
        wait_for(lambda: rdb.zcard(keys.OUTBOX_PENDING) == 0, what="the outbox to be empty")

        assert sorted(d.headers["webhook-id"] for d in receiver.delivered()) == ["cancel:s1:old1:succeeded", "cancel:s1:old2:succeeded"]
        assert sorted(d.body.decode() for d in receiver.delivered()) == sorted([body, retried])
        assert all(signed_correctly(d) for d in receiver.delivered())
        assert rdb.zcard(keys.OUTBOX_RETRY) == 0 and rdb.xlen(keys.OUTBOX) == 0


def test_a_notification_that_never_lands_is_dead_lettered_and_delivered_on_replay(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    with receiving(then=Answer(500)) as receiver:
        start_worker(env=notify_env(receiver.url, PAYQ_NOTIFY_MAX_ATTEMPTS="2"))
        cancel = producer.enqueue_cancel(storeId="s1", shoppingTripId="t4")
        event_id = f"{cancel}:succeeded"
        wait_for_state(rdb, f"notify:{event_id}", "dead", timeout=30)
        entry = json.loads(rdb.hget("payq:dlq", f"notify:{event_id}") or "{}")
        assert (entry["reason"], entry["operation"], entry["status"], entry["attempts"]) == ("notify-failed", "notify", 500, 2)
        assert record(rdb, cancel)["state"] == "succeeded", "the payment job itself is done"

        receiver.then = Answer(200)
        replayed = payq("dlq", "replay", f"notify:{event_id}")
        assert replayed.returncode == 0, replayed.stderr
        wait_for(lambda: len(receiver.delivered()) == 1, what="the replayed notification")
        assert receiver.delivered()[0].headers["webhook-id"] == event_id


def test_a_dead_letter_is_notified_with_its_reason(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    api.set_faults({"rules": [{"endpoint": "cancel", "fault": {"status": 400, "body": {"errorMsg": "BadRequestException: no"}}}]})
    with receiving() as receiver:
        start_worker(env=notify_env(receiver.url))
        cancel = producer.enqueue_cancel(storeId="s1", shoppingTripId="t5")
        wait_for_state(rdb, cancel, "dead")
        wait_for(lambda: len(receiver.delivered()) == 1, what="the dead letter's notification")

        [event] = events(receiver.delivered())
        assert event["type"] == "job.dead_lettered"
        assert event["id"] == f"{cancel}:dead:0"
        assert {k: event["data"][k] for k in ("jobId", "state", "reason", "status", "errorMsg")} == {
            "jobId": cancel, "state": "dead-lettered", "reason": "permanent", "status": 400, "errorMsg": "BadRequestException: no",
        }


def test_a_receiver_that_hangs_does_not_hold_up_payment_jobs(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    with receiving(then=Answer(200, hold=20.0)) as receiver:
        start_worker(env=notify_env(receiver.url), concurrency=8)
        captures = [producer.enqueue_capture(storeId="s1", shoppingTripId=f"h{i}", amount=USD_1) for i in range(20)]
        for capture in captures:
            wait_for_state(rdb, capture, "succeeded", timeout=60)
        reports = [json.loads(record(rdb, c)["result"])["reportJobId"] for c in captures]
        for report in reports:
            wait_for_state(rdb, report, "succeeded", timeout=60)

        # every payment job settled while the receiver still held every delivery it had been given
        assert receiver.all() == []
        assert receiver.arrivals >= 1, "notifications were being delivered all along"


def test_payq_notify_test_sends_a_signed_event_the_sandbox_receiver_verifies(payq: PayqRunner) -> None:
    with SandboxProcess("--notify-secret", SECRET) as receiver:
        ran = payq("notify", "test", env=notify_env(receiver.url + "/admin/notifications"))
        assert ran.returncode == 0, ran.stderr
        assert "the receiver answered HTTP 204" in ran.stdout
        [arrived] = requests.get(receiver.url + "/admin/notifications", timeout=10).json()["notifications"]
        assert arrived["signatureValid"] is True
        assert arrived["event"]["type"] == "test"

    with receiving(then=Answer(500)) as failing:
        ran = payq("notify", "test", env=notify_env(failing.url))
        assert ran.returncode == 1
        assert "not delivered" in ran.stderr and "HTTP 500" in ran.stderr

    ran = payq("notify", "test")
    assert ran.returncode == 2 and "PAYQ_NOTIFY_URL" in ran.stderr


def test_a_burst_of_notifications_to_a_slow_receiver_is_all_delivered_several_at_a_time(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    # 0.2 s an answer: slower than tasks.notify.schedule.SLOW, so the delivery thread POSTs up to FAN_OUT at once
    with receiving(then=Answer(200, hold=0.2)) as receiver:
        start_worker(env=notify_env(receiver.url, PAYQ_WORKER_CONCURRENCY="8"), concurrency=8)  # the slots follow the setting
        cancels = [producer.enqueue_cancel(storeId="s1", shoppingTripId=f"b{i}") for i in range(40)]
        wait_for(lambda: len(receiver.delivered()) >= 40, timeout=90, interval=0.2, what="every cancel's notification")

        assert sorted(e["data"]["jobId"] for e in events(receiver.delivered())) == sorted(cancels), "each once"
        assert all(signed_correctly(d) for d in receiver.delivered())
        at_once = most_at_once(receiver.all(), held=0.2)
        assert 2 <= at_once <= delivery_slots(Settings(worker_concurrency=8)) * FAN_OUT, f"{at_once} at once: overlapping, and bounded"
        wait_for(lambda: rdb.zcard(keys.OUTBOX_PENDING) == 0, what="the outbox to be empty")


def test_notifications_a_killed_worker_was_delivering_are_delivered_by_another(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    with receiving(then=Answer(200, hold=120.0)) as receiver:  # the first worker's deliveries hang until it is killed
        first = start_worker(env=notify_env(receiver.url, PAYQ_WORKER_CONCURRENCY="4"), concurrency=4)
        cancels = [producer.enqueue_cancel(storeId="s1", shoppingTripId=f"k{i}") for i in range(10)]
        for cancel in cancels:
            wait_for_state(rdb, cancel, "succeeded")
        wait_for(lambda: receiver.arrivals >= 1, what="the first worker to be delivering")
        first.kill()
        in_hand = receiver.arrivals
        receiver.then = Answer(200)

        start_worker(env=notify_env(receiver.url), concurrency=4)
        wait_for(lambda: len(receiver.delivered()) >= len(cancels), timeout=60, interval=0.2, what="every notification, the killed worker's too")

        delivered = events(receiver.delivered())
        assert sorted(e["data"]["jobId"] for e in delivered) == sorted(cancels), "none lost, none twice"
        assert all(e["id"] == f"{e['data']['jobId']}:succeeded" for e in delivered)
        assert all(signed_correctly(d) for d in receiver.delivered())
        assert 1 <= in_hand <= delivery_slots(Settings(worker_concurrency=4)) * FAN_OUT, "the killed worker held some deliveries (bounded)"
        wait_for(lambda: rdb.zcard(keys.OUTBOX_PENDING) == 0, what="the outbox to be empty")


def most_at_once(deliveries: list[Received], held: float) -> int:
    """The most deliveries the receiver held at one moment (each for ``held`` seconds from its arrival: a slot's next
    request can only arrive after that, while the time an answer is noted may come after the next arrival)."""
    edges = sorted([(d.arrived, 1) for d in deliveries] + [(d.arrived + held, -1) for d in deliveries])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def test_a_settle_sent_with_the_next_read_keeps_what_it_read_when_redis_lost_its_scripts(rdb: redis.Redis) -> None:
    """The delivery loop settles a batch in the round trip that reads the next: entries read there are never dropped."""
    outbox = Outbox(rdb)
    outbox.ensure_group()
    for i in range(3):
        rdb.xadd(keys.OUTBOX, {"id": f"e{i}", "body": "{}", "job": f"j{i}", "attempts": 0, "at": 1.0})
        rdb.zadd(keys.OUTBOX_PENDING, {f"e{i}": 1.0})
    first = outbox.read("c1", 2, 100)
    rdb.script_flush()  # as after a Redis restart: the settle script is unknown, the read still happens

    rest = outbox.settle_and_read(first, {}, "c1", 10)

    assert [e.event_id for e in rest] == ["e2"], "the entry read in the same round trip is returned"
    assert rdb.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"] == 1, "the first two settled, the third in hand"
    assert rdb.zrange(keys.OUTBOX_PENDING, 0, -1) == ["e2"]
    assert outbox.settle_and_read(rest, {}, "c1", 10) == []
    assert rdb.zcard(keys.OUTBOX_PENDING) == 0 and rdb.xlen(keys.OUTBOX) == 0
