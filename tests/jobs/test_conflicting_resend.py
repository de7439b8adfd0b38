"""A job sent again under its id with other fields is refused, from the producer and from ``payq enqueue``; the same job written otherwise is not.

Records written by payq before this check (their ``kwargs`` JSON, as it wrote
them) are compared the same way: a rolling upgrade refuses a changed resend
of a job the old code enqueued, and takes its exact resend.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
import redis

from payapi.errors import JobConflict
from payapi.operations import QUEUES
from tasks.producer import Producer, prepare
from tasks.redis import keys
from tasks.store import lanes
from tests.support.jobs import record
from tests.support.payq_cli import PAYQ, PayqRunner, cli_env

REFUND_ID = "5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a"


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "code": "USD"}


def depth(rdb: redis.Redis) -> int:
    return sum(lanes.depths(rdb, QUEUES).values())


def test_a_producer_resend_with_another_amount_raises_naming_the_field_with_both_values(producer: Producer, rdb: redis.Redis) -> None:
    producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=usd("19.99"))

    with pytest.raises(JobConflict) as refused:
        producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=usd("99"))

    assert [(d.job_id, d.field, d.stored, d.sent, d.index) for d in refused.value.differences] == [
        ("capture:s1:t1", "amount.amount", "19.99", "99", None)]
    assert json.loads(record(rdb, "capture:s1:t1")["kwargs"])["amount"] == usd("19.99"), "nothing was changed"
    assert depth(rdb) == 1


def test_the_same_amount_written_otherwise_is_the_same_job(producer: Producer, rdb: redis.Redis) -> None:
    first = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=usd("19.99"))

    assert producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=usd("19.990")) == first
    assert depth(rdb) == 1


def test_a_batch_enqueues_every_job_but_the_conflicting_one_and_names_it_by_index(producer: Producer, rdb: redis.Redis) -> None:
    producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=usd("19.99"))
    batch = [prepare("cancel", {"storeId": "s1", "shoppingTripId": "t2"}),
             prepare("capture", {"storeId": "s1", "shoppingTripId": "t1", "amount": usd("20.00")}),
             prepare("cancel", {"storeId": "s1", "shoppingTripId": "t3"})]

    with pytest.raises(JobConflict) as refused:
        producer.publish(batch)

    assert [(d.index, d.field) for d in refused.value.differences] == [(1, "amount.amount")]
    assert record(rdb, "cancel:s1:t2") and record(rdb, "cancel:s1:t3"), "the others were enqueued"
    done = producer.submit(batch)
    assert [(r.created, r.conflict) for r in done] == [(False, False), (False, True), (False, False)]


def test_a_refund_sent_again_with_its_id_and_another_amount_is_refused(producer: Producer) -> None:
    producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=usd("19.99"))
    producer.enqueue_refund(storeId="s1", shoppingTripId="t1", amount=usd("5.00"), refundReasonCode="OTHER", refundRequestId=REFUND_ID)

    with pytest.raises(JobConflict) as refused:
        producer.enqueue_refund(storeId="s1", shoppingTripId="t1", amount=usd("6.00"), refundReasonCode="OTHER", refundRequestId=REFUND_ID)

    assert [(d.field, d.stored, d.sent) for d in refused.value.differences] == [("amount.amount", "5.00", "6.00")]


def test_a_cli_resend_with_another_amount_exits_2_with_the_intake_s_words(payq: PayqRunner, rdb: redis.Redis) -> None:
    args = ("enqueue", "capture", "--store-id", "s1", "--trip-id", "t1", "--currency", "USD", "--amount")
    assert payq(*args, "19.99").returncode == 0

    same, changed = payq(*args, "19.990"), payq(*args, "99")

    assert (same.returncode, same.stdout) == (0, "capture:s1:t1\n")
    assert changed.returncode == 2 and changed.stdout == ""
    assert changed.stderr.splitlines() == [
        "invalid: amount.amount: differs from the job enqueued before under this id: stored 19.99, sent 99; nothing was changed "
        "(a job id names one job: send the same fields, or a new job under a new id)"]
    assert depth(rdb) == 1


def test_a_job_file_enqueues_the_other_lines_and_ends_with_a_summary(payq: PayqRunner, rdb: redis.Redis, tmp_path: Path) -> None:
    assert payq("enqueue", "capture", "--store-id", "s1", "--trip-id", "t1", "--amount", "19.99", "--currency", "USD").returncode == 0
    lines = [{"operation": "cancel", "storeId": "s1", "shoppingTripId": "t2"},
             {"operation": "capture", "storeId": "s1", "shoppingTripId": "t1", "amount": usd("99")},
             {"operation": "capture", "storeId": "s1", "shoppingTripId": "t1", "amount": usd("19.990")},
             {"operation": "cancel", "storeId": "s1", "shoppingTripId": "t3"}]
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    done = payq("enqueue", "--file", str(path))

    assert done.returncode == 2
    assert done.stdout.splitlines() == ["cancel:s1:t2", "capture:s1:t1", "cancel:s1:t3"]
    err = done.stderr.splitlines()
    assert "enqueueing: 4 of 4" in err, "not a terminal: counts, not a bar"
    assert err[-2].startswith("line 2: refused capture:s1:t1: amount.amount: differs from the job enqueued before under this id: "
                              "stored 19.99, sent 99")
    assert err[-1] == "enqueued 2, already there 1, refused 1"
    assert record(rdb, "cancel:s1:t3")


def test_a_job_file_on_a_terminal_shows_a_progress_bar(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps({"operation": "cancel", "storeId": "s1", "shoppingTripId": f"t{i}"}) + "\n" for i in range(50)))
    main, terminal = pty.openpty()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}, **cli_env(redis_url), "COLUMNS": "100"}
    with subprocess.Popen([str(PAYQ), "enqueue", "--file", str(path)], stdout=subprocess.PIPE, stderr=terminal, env=env) as proc:
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(timeout=30) == 0
    os.close(main)
    screen = shown.decode(errors="replace")
    assert "enqueueing" in screen and "100%" in screen and "#" in screen, screen
    assert "enqueued 50, already there 0, refused 0" in screen


@pytest.mark.parametrize(("kwargs_json", "sent", "conflict"), [
    ('{"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "19.99", "code": "USD"}}', "19.990", False),
    ('{"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "19.99", "code": "USD"}}', "99", True),
    ('{"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "20", "code": "USD"}}', "20.00", False),
])
def test_a_record_the_previous_payq_wrote_compares_as_one_written_now(
    producer: Producer, rdb: redis.Redis, kwargs_json: str, sent: str, conflict: bool,
) -> None:
    # the record exactly as the enqueue script before this change left a capture that has run
    rdb.hset(keys.job("capture:s1:t1"), mapping={"op": "capture", "kwargs": kwargs_json, "attempts": "1", "enqueued_at": "1700000000.5",
                                                 "state": "succeeded", "updated_at": "1700000001.5", "result": '{"reportJobId": "x"}'})

    if conflict:
        with pytest.raises(JobConflict):
            producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=usd(sent))
    else:
        assert producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=usd(sent)) == "capture:s1:t1"
    assert record(rdb, "capture:s1:t1")["kwargs"] == kwargs_json and depth(rdb) == 0
