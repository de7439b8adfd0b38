"""payq's Celery messages are what Celery's own ``apply_async`` publishes, field by field (tasks/jobs/messages.py).

payq writes a job's message in the Redis script that records the job, so that
recording and publishing are one atomic step; the worker must not be able to
tell it from a message Celery sent. Here each job is enqueued by the producer
on a real Redis, the same task with the same id and kwargs is published by
``apply_async`` of the worker's own app, and the two raw messages popped from
the queue are compared: the same keys in the same order, the body byte for
byte, every field equal but the four in :data:`DIFFERENT`, each for its reason.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
import redis

from config.settings import Settings
from payapi.operations import OPERATIONS, Operation
from tasks.producer import Producer, prepare
from tasks.store import lanes
from workers.app import app

LONGEST_ID = "x" * 255  # a store's and a trip's ids at their longest (payapi.models): kwargsrepr still whole, as Celery's saferepr keeps 1024 characters

JOBS = [
    pytest.param("capture", {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "12.34", "code": "USD"}}, id="capture"),
    pytest.param("cancel", {"storeId": "s1", "shoppingTripId": "t1"}, id="cancel"),
    pytest.param("refund", {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "0.50", "code": "EUR"}, "refundReasonCode": "DAMAGED_ITEM"},
                 id="refund"),
    pytest.param("feedback", {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": {"amount": "12.34", "code": "USD"},
                              "settledAmount": {"amount": "12.34", "code": "USD"}, "paymentStatusTime": 1_767_000_000}, id="feedback"),
    pytest.param("capture", {"storeId": LONGEST_ID, "shoppingTripId": LONGEST_ID, "amount": {"amount": "99999.99", "code": "USD"}},
                 id="capture-longest-ids"),
]

# The fields where payq's message differs from apply_async's, and why each may.
DIFFERENT = {
    ("headers", "origin"): "who published it: Celery names the process gen<pid>@<host>, payq its producer payq-producer-<pid>@<host>",
    ("headers", "timelimit"): "apply_async writes the publishing app's task_time_limit; payq leaves it unset, and the worker then applies its "
                              "own task_time_limit (Celery's request falls back to the task's limit, which is the app's setting)",
    ("properties", "reply_to"): "where Celery would send an RPC result (its app's id); payq keeps no results (task_ignore_result): none",
    ("properties", "delivery_tag"): "a new uuid at every publish, in both",
}


@pytest.mark.parametrize(("operation", "fields"), JOBS)
def test_a_job_s_message_is_what_apply_async_publishes_field_by_field(redis_url: str, rdb: redis.Redis, operation: str,
                                                                      fields: dict[str, Any]) -> None:
    job = prepare(operation, fields)
    queue = OPERATIONS[job.operation].queue
    Producer(Settings(redis_url=redis_url), client=rdb).publish([job])
    [published] = lanes.messages(rdb, queue)  # in its store's lane (tasks/store/lanes.py); apply_async's in the queue's own list
    ours = json.loads(published)
    with app.connection_for_write(redis_url) as connection:
        app.tasks[OPERATIONS[job.operation].task].apply_async(kwargs=job.kwargs, task_id=job.job_id, connection=connection)
    theirs = json.loads(rdb.lpop(queue) or "{}")

    assert list(ours) == list(theirs) == ["body", "content-encoding", "content-type", "headers", "properties"]
    assert ours["body"] == theirs["body"], "args, kwargs and the canvas fields, byte for byte"
    assert (ours["content-encoding"], ours["content-type"]) == (theirs["content-encoding"], theirs["content-type"])
    differing = set()
    for part in ("headers", "properties"):
        assert list(ours[part]) == list(theirs[part]), f"the same {part}, in the same order"
        differing |= {(part, name) for name in theirs[part] if ours[part][name] != theirs[part][name]}
    assert differing == set(DIFFERENT), "every other field is equal"

    assert ours["headers"]["id"] == theirs["headers"]["id"] == job.job_id and ours["headers"]["kwargsrepr"] == repr(job.kwargs)
    assert re.fullmatch(r"payq-producer-\d+@.+", ours["headers"]["origin"]) and re.fullmatch(r"gen\d+@.+", theirs["headers"]["origin"])
    assert ours["headers"]["timelimit"] == [None, None] and theirs["headers"]["timelimit"] == [app.conf.task_time_limit, None]
    assert ours["properties"]["reply_to"] == "" and uuid.UUID(theirs["properties"]["reply_to"])
    tags = {uuid.UUID(ours["properties"]["delivery_tag"]), uuid.UUID(theirs["properties"]["delivery_tag"])}
    assert len(tags) == 2


def test_the_worker_s_app_applies_its_own_time_limit_to_a_message_without_one() -> None:
    # what makes payq's unset timelimit equivalent: the task's limit is the app's task_time_limit setting
    for spec in OPERATIONS.values():
        if spec.operation is not Operation.NOTIFY:
            assert app.tasks[spec.task].time_limit == app.conf.task_time_limit is not None
