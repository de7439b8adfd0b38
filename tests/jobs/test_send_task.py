"""Celery's own producers are producers too: ``send_task`` from another process, with Decimal money, keeps every money rule.

A store backend on Celery enqueues as Celery teaches, ``app.send_task(name,
kwargs=..., queue=...)``, with an app of its own that knows nothing of payq
(here a ``python -c`` process importing only Celery). Its amounts are
``Decimal`` (kombu carries them across as Decimals), ``str`` or ``int``. The
worker that receives such a message enqueues it through payq's rules before
anything is called (tasks/jobs/admission.py); these tests hold it to them
against the real sandbox, Redis and workers, every setting at its default
but the test workers' short backoffs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import redis

from tasks.producer import Producer
from tasks.redis import keys
from tests.support.celery_sender import capture, refund, send_task
from tests.support.jobs import calls, queued_messages, record, wait_for_state
from tests.support.payq_cli import invoke
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess


def exact(entry: dict[str, Any]) -> dict[str, Any]:
    """A request the sandbox logged, its numbers read exactly."""
    parsed: dict[str, Any] = json.loads(entry["body"], parse_float=Decimal)
    return parsed


def dead_letter(rdb: redis.Redis, entry_id: str) -> dict[str, Any]:
    """The dead-letter entry of ``entry_id``, once there."""
    raw = wait_for(lambda: rdb.hget(keys.DEAD_LETTERS, entry_id), what=f"{entry_id}'s dead letter")
    entry: dict[str, Any] = json.loads(raw)
    return entry


def test_a_decimal_capture_sent_with_send_task_settles_its_report_chains_and_payq_trip_shows_it(
    redis_url: str, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    [bare] = send_task(redis_url, capture("t1", Decimal("21.00")))

    done = wait_for_state(rdb, "capture:s1:t1", "succeeded")
    settled_at = json.loads(done["result"])["settledAt"]
    wait_for_state(rdb, f"feedback:s1:t1:{settled_at}", "succeeded")
    wait_for(lambda: queued_messages(rdb) == 0, what="every message acknowledged")

    [call] = calls(api, "capture")
    assert str(exact(call)["amount"]["amount"]) == "21.00", "sent with its exact digits"
    assert json.loads(done["kwargs"])["amount"] == {"amount": "21.00", "code": "USD"}, "recorded with its exact digits"
    [report] = calls(api, "feedback")
    assert str(exact(report)["settledAmount"]["amount"]) == "21.00"
    assert f"{bare}: sent around payq's producer; enqueued as capture:s1:t1" in worker.log()
    assert record(rdb, bare) == {}, "nothing recorded under the bare message's own id"
    assert rdb.hlen(keys.DEAD_LETTERS) == 0

    shown = invoke(redis_url, "trip", "s1", "t1", "--json")
    assert shown.code == 0, shown.stderr
    assert "capture:s1:t1" in shown.stdout and f"feedback:s1:t1:{settled_at}" in shown.stdout


def test_the_same_capture_sent_twice_is_one_call_and_another_amount_for_the_trip_is_never_sent(
    redis_url: str, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    send_task(redis_url, capture("t1", Decimal("21.00")))
    wait_for_state(rdb, "capture:s1:t1", "succeeded")
    # the same capture again (as a string and as a Decimal with another trailing zero), and a conflicting one as an int
    again_str, again_decimal, other = send_task(redis_url, capture("t1", "21.00"), capture("t1", Decimal("21.000")), capture("t1", 22))

    conflict = dead_letter(rdb, other)
    wait_for(lambda: queued_messages(rdb) == 0, what="every message acknowledged")
    assert len(calls(api, "capture")) == 1, "one API call for the trip"
    assert conflict["reason"] == "invalid-job" and conflict["id"] == other
    assert "amount.amount" in conflict["error"] and "21.00" in conflict["error"] and "22" in conflict["error"]
    assert conflict["kwargs"]["amount"] == {"amount": "22", "code": "USD"}
    assert rdb.hlen(keys.DEAD_LETTERS) == 1, f"the resends are no-ops, not dead letters: {again_str}, {again_decimal}"
    assert record(rdb, "capture:s1:t1")["state"] == "succeeded"


def test_a_refund_over_the_captured_amount_is_never_sent_and_its_dead_letter_names_amount(
    redis_url: str, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    send_task(redis_url, capture("t1", Decimal("10.00")))
    wait_for_state(rdb, "capture:s1:t1", "succeeded")
    [fits] = send_task(redis_url, refund("t1", Decimal("4.00")))
    wait_for_state(rdb, f"refund:{fits}", "succeeded")  # without a refundRequestId: the message's own id is its key
    [over] = send_task(redis_url, refund("t1", Decimal("6.01")))

    entry = dead_letter(rdb, over)
    assert entry["reason"] == "invalid-job"
    assert "amount.amount: refunds would exceed the captured amount of trip s1/t1: captured 10.00 USD, already refunded 4.00" in entry["error"]
    assert [str(exact(c)["amount"]["amount"]) for c in calls(api, "refund")] == ["4.00"], "the over-refund is never sent"
    assert not rdb.exists(keys.job(f"refund:{over}"))


def test_a_refund_sent_while_its_capture_waits_out_a_429_waits_for_it(
    redis_url: str, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    # long enough for the sending process to start and the refund to arrive while the capture waits, on a loaded machine
    api.set_faults({"rules": [{"endpoint": "capture", "sequence": ["429 Retry-After: 10"]}]})
    start_worker()
    send_task(redis_url, capture("t1", Decimal("10.00")))
    wait_for_state(rdb, "capture:s1:t1", "deferred")
    key = "0b9f6a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
    send_task(redis_url, refund("t1", 4, refundRequestId=key))

    assert wait_for_state(rdb, f"refund:{key}", "waiting")["waiting_for"] == "capture:s1:t1"
    wait_for_state(rdb, f"refund:{key}", "succeeded", timeout=40)
    [capture_200] = [c for c in calls(api, "capture") if c["status"] == 200]
    [refund_call] = calls(api, "refund")
    assert refund_call["status"] == 200 and refund_call["time"] > capture_200["time"]
    assert str(exact(refund_call)["amount"]["amount"]) == "4"


def test_a_bare_message_that_breaks_a_field_s_rule_is_an_invalid_job_naming_the_field_never_an_internal_error(
    redis_url: str, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    as_float = capture("t1", 0)[1] | {"amount": {"amount": 21.5, "code": "USD"}}  # a binary float: refused, as the producer does
    no_trip = {"storeId": "s1", "amount": {"amount": Decimal("1.00"), "code": "USD"}}
    floated, missing = send_task(redis_url, ("capture", as_float), ("capture", no_trip))

    assert "amount.amount" in dead_letter(rdb, floated)["error"]
    assert "shoppingTripId" in dead_letter(rdb, missing)["error"]
    assert {dead_letter(rdb, i)["reason"] for i in (floated, missing)} == {"invalid-job"}
    assert calls(api, "capture") == []
    assert not rdb.exists(keys.job("capture:s1:t1"))


def test_a_message_sent_under_its_natural_id_still_keeps_the_trip_s_rules_and_runs_once(
    redis_url: str, rdb: redis.Redis, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    # a sender that learnt payq's job ids: the id alone must not let a job past the books (a cancelled trip is not captured)
    start_worker()
    send_task(redis_url, ("cancel", {"storeId": "s1", "shoppingTripId": "t1"}), task_id="cancel:s1:t1")
    wait_for_state(rdb, "cancel:s1:t1", "succeeded")
    [refused] = send_task(redis_url, capture("t1", Decimal("5.00")), task_id="capture:s1:t1")
    send_task(redis_url, capture("t2", Decimal("5.00")), task_id="capture:s1:t2")

    wait_for_state(rdb, "capture:s1:t2", "succeeded")
    entry = dead_letter(rdb, refused)
    assert entry["reason"] == "invalid-job" and "a cancelled trip cannot be captured" in entry["error"]
    assert [exact(c)["shoppingTripId"] for c in calls(api, "capture")] == ["t2"], "called once, only for the trip not cancelled"
    assert len(calls(api, "cancel")) == 1



def test_a_message_under_a_recorded_job_s_id_with_another_amount_runs_the_job_as_recorded_once(
    redis_url: str, rdb: redis.Redis, api: SandboxProcess, producer: Producer, start_worker: Callable[..., WorkerProcess],
) -> None:
    # the job is on record (enqueued through payq, amount 1.00) and queued; a sender reuses its id with 999.00
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t9", amount={"amount": "1.00", "code": "USD"})
    send_task(redis_url, capture("t9", Decimal("999.00")), task_id=job_id)

    worker = start_worker()
    wait_for_state(rdb, job_id, "succeeded")
    wait_for(lambda: queued_messages(rdb) == 0, what="both messages taken")

    [call] = calls(api, "capture")
    assert str(exact(call)["amount"]["amount"]) == "1.00", "the job as recorded, never the message's amount"
    assert json.loads(record(rdb, job_id)["kwargs"])["amount"] == {"amount": "1.00", "code": "USD"}
    assert "the message's kwargs differ from the job's on record (amount.amount); the job runs as recorded" in worker.log()
    assert "999.00" not in worker.log(), "what differs is named, not its value"
