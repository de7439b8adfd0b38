"""Every writer of a job's arguments writes its amounts exactly, whichever type a caller used: Decimal, str or int.

A message sent around payq's producer (Celery's ``send_task``) arrives with its
amounts as kombu decoded them, Decimals included; payq's own doors hand over
strings. Each writer below is given kwargs as they came, on a real Redis, and
what it wrote is read back as text: the amount's digits, never a float, never
a ``TypeError`` (the Decimal that once dead-lettered every such job as
``internal-error``). Flower's kwargs are the message's ``kwargsrepr`` and the
task-sent event's ``kwargs``: the repr of the same exact strings.
"""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from typing import Any

import pytest
import redis

from payapi import wire
from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind
from tasks.jobs.messages import build_message, build_sent_event
from tasks.jobs.resend import stored_differences
from tasks.redis import keys
from tasks.states import DeadLetterReason
from tasks.store.deadletters import DeadLetter, DeadLetterStore, Replayed
from tasks.store.records import JobStore, NewJob
from tests.support.jobs import take_message
from tests.support.names import queue_of

# (the amount as a caller typed it, what payq writes for it in a job's kwargs JSON)
AMOUNTS = [
    pytest.param(Decimal("21.00"), '"21.00"', id="decimal"),
    pytest.param(Decimal("0.10"), '"0.10"', id="decimal-trailing-zero"),
    pytest.param("21.00", '"21.00"', id="str"),
    pytest.param(21, "21", id="int"),
]


def kwargs_of(amount: object) -> dict[str, Any]:
    return {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": amount, "code": "USD"}}


def amount_text(kwargs_json: str) -> str:
    """The amount's text in a job's kwargs JSON, exactly as written."""
    _, _, rest = kwargs_json.partition('"amount": {"amount": ')
    return rest.partition(",")[0]


def body_kwargs_json(message: str) -> str:
    """The kwargs of a Celery message's body, as the text the message carries."""
    body = base64.b64decode(json.loads(message)["body"]).decode()
    return json.dumps(json.loads(body)[1])


def test_the_one_encoder_writes_each_amount_as_its_digits() -> None:
    assert wire.job_json({"a": {"amount": Decimal("21.00")}, "b": [Decimal("1.5")], "c": 3, "d": "4.00"}) == \
        '{"a": {"amount": "21.00"}, "b": ["1.5"], "c": 3, "d": "4.00"}'


@pytest.mark.parametrize(("amount", "written"), AMOUNTS)
def test_a_message_and_its_task_sent_event_carry_the_exact_amount_and_flower_s_repr_shows_it(amount: object, written: str) -> None:
    message = json.loads(build_message(Operation.CAPTURE, "capture:s1:t1", kwargs_of(amount)))
    assert amount_text(body_kwargs_json(json.dumps(message))) == written
    assert message["headers"]["kwargsrepr"] == repr(wire.exact(kwargs_of(amount)))
    assert f"'amount': {written.replace(chr(34), chr(39))}" in message["headers"]["kwargsrepr"]
    event = json.loads(base64.b64decode(json.loads(build_sent_event(Operation.CAPTURE, "capture:s1:t1", kwargs_of(amount), 0.0))["body"]))
    assert event["kwargs"] == message["headers"]["kwargsrepr"]


@pytest.mark.parametrize(("amount", "written"), AMOUNTS)
def test_enqueue_records_and_publishes_the_exact_amount(rdb: redis.Redis, amount: object, written: str) -> None:
    JobStore(rdb, 3600).enqueue([NewJob(Operation.CAPTURE, "capture:s1:t1", kwargs_of(amount))])

    assert amount_text(rdb.hget(keys.job("capture:s1:t1"), "kwargs") or "") == written
    assert amount_text(body_kwargs_json(take_message(rdb, queue_of("capture")) or "")) == written
    assert rdb.hget(keys.trip("s1", "t1"), "capture_cents") == str(int(Decimal(str(amount)) * 100))


@pytest.mark.parametrize(("amount", "written"), AMOUNTS)
def test_a_capture_s_chained_report_is_recorded_and_published_with_the_exact_amount(rdb: redis.Redis, amount: object, written: str) -> None:
    store = JobStore(rdb, 3600)
    store.enqueue([NewJob(Operation.CAPTURE, "capture:s1:t1", kwargs_of("21.00"))])
    report_kwargs = {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": {"amount": amount, "code": "USD"},
                     "settledAmount": {"amount": amount, "code": "USD"}, "paymentStatusTime": 1_767_000_000}
    report = NewJob(Operation.FEEDBACK, "feedback:s1:t1:1767000000", report_kwargs)
    store.finish_capture("capture:s1:t1", 1_767_000_000, {"settledAt": 1_767_000_000}, report, time.time())

    stored = json.loads(rdb.hget(keys.job(report.job_id), "kwargs") or "{}", parse_float=Decimal)
    assert json.dumps(stored["settledAmount"]["amount"], default=str) == written
    published = json.loads(base64.b64decode(json.loads(take_message(rdb, queue_of("feedback")) or "")["body"]))[1]
    assert json.dumps(published["totalAmount"]["amount"]) == written


@pytest.mark.parametrize(("amount", "written"), AMOUNTS)
def test_a_dead_letter_and_its_replay_keep_the_exact_amount(rdb: redis.Redis, amount: object, written: str) -> None:
    dead_letters = DeadLetterStore(rdb, 3600, 3600)
    entry = DeadLetter.of(Failure(FailureKind.INVALID_JOB, detail="amount.amount: test"), id="bare-1", operation=Operation.CAPTURE,
                          task="payments.capture", kwargs=kwargs_of(amount), reason=DeadLetterReason.INVALID_JOB, attempts=0,
                          dead_at=time.time())
    assert dead_letters.add(entry)

    raw = rdb.hget(keys.DEAD_LETTERS, "bare-1") or ""
    assert json.dumps(json.loads(raw)["kwargs"]["amount"]["amount"]) == written
    assert dead_letters.replay("bare-1") is Replayed.REPLAYED
    assert amount_text(rdb.hget(keys.job("bare-1"), "kwargs") or "") == written
    assert amount_text(body_kwargs_json(take_message(rdb, queue_of("capture")) or "")) == written


@pytest.mark.parametrize(("amount", "written"), AMOUNTS)
def test_a_resend_compared_with_the_record_names_the_exact_amounts(amount: object, written: str) -> None:
    [difference] = stored_differences(Operation.CAPTURE, "capture:s1:t1", wire.job_json(kwargs_of("99.00")), kwargs_of(amount))
    assert (difference.field, difference.stored, difference.sent) == ("amount.amount", "99.00", format(Decimal(str(amount)), "f"))
