"""A job's message and task-sent event, filled into templates (tasks/jobs/messages.py), are byte for byte what ``json.dumps`` makes of them as dicts.

The dicts below are the messages as payq built them before the templates: the
reference. tests/jobs/test_messages.py compares the message with Celery's own
``apply_async``; this compares the text itself, so a reader that compares or
hashes the raw message (a rolling upgrade's old worker, a dead letter) sees nothing new.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from decimal import Decimal
from typing import Any

import pytest

from payapi import wire
from payapi.operations import OPERATIONS, Operation
from tasks.jobs import messages
from tasks.jobs.messages import build_message, build_sent_event

ORIGIN = messages._ORIGIN

KWARGS: list[Any] = [
    pytest.param(Operation.CAPTURE, {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": Decimal("12.30"), "code": "USD"}},
                 id="capture-decimal"),
    pytest.param(Operation.CANCEL, {"storeId": "s1", "shoppingTripId": "t1"}, id="cancel"),
    pytest.param(Operation.REFUND, {"storeId": "Zürich-ß", "shoppingTripId": "t\"1\\n", "amount": {"amount": "0.50", "code": "EUR"},
                                    "refundReasonCode": "DAMAGED_ITEM", "refundRequestId": "r-1"}, id="refund-non-ascii-and-escapes"),
    pytest.param(Operation.FEEDBACK, {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": {"amount": "12.34", "code": "USD"},
                                      "settledAmount": {"amount": "12.34", "code": "USD"}, "paymentStatusTime": 1_767_000_000},
                 id="feedback"),
]
TRACEPARENTS = ["", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]


def reference_message(operation: Operation, task_id: str, kwargs: dict[str, Any], traceparent: str, tag: str) -> str:
    kwargs = wire.exact(kwargs)
    body = json.dumps([[], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    headers: dict[str, Any] = {
        "lang": "py", "task": OPERATIONS[operation].task, "id": task_id, "shadow": None, "eta": None, "expires": None,
        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": "()", "kwargsrepr": repr(kwargs), "origin": ORIGIN, "ignore_result": True, "replaced_task_nesting": 0,
        "stamped_headers": None, "stamps": {},
    }
    if traceparent:
        headers["traceparent"] = traceparent
    return json.dumps({
        "body": base64.b64encode(body.encode()).decode(), "content-encoding": "utf-8", "content-type": "application/json",
        "headers": headers,
        "properties": {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                       "delivery_info": {"exchange": "", "routing_key": OPERATIONS[operation].queue}, "priority": 0,
                       "body_encoding": "base64", "delivery_tag": tag},
    })


def reference_sent_event(operation: Operation, task_id: str, kwargs: dict[str, Any], now: float, tag: str) -> str:
    queue = OPERATIONS[operation].queue
    event = {
        "type": "task-sent", "uuid": task_id, "root_id": task_id, "parent_id": None, "name": OPERATIONS[operation].task,
        "args": "()", "kwargs": repr(wire.exact(kwargs)), "retries": 0, "eta": None, "expires": None, "queue": queue,
        "exchange": "", "routing_key": queue, "hostname": ORIGIN, "utcoffset": 0, "pid": os.getpid(), "clock": 0, "timestamp": now,
    }
    return json.dumps({
        "body": base64.b64encode(json.dumps(event).encode()).decode(), "content-encoding": "utf-8",
        "content-type": "application/json", "headers": {"hostname": ORIGIN},
        "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "task.sent"}, "priority": 0,
                       "body_encoding": "base64", "delivery_tag": tag},
    })


@pytest.mark.parametrize("traceparent", TRACEPARENTS, ids=["untraced", "traced"])
@pytest.mark.parametrize(("operation", "kwargs"), KWARGS)
def test_a_message_is_byte_for_byte_the_dumps_of_its_dict(operation: Operation, kwargs: dict[str, Any], traceparent: str) -> None:
    task_id = f"{operation.value}:é:1"
    built = build_message(operation, task_id, kwargs, traceparent)
    tag = json.loads(built)["properties"]["delivery_tag"]
    assert uuid.UUID(tag)
    assert built == reference_message(operation, task_id, kwargs, traceparent, tag)


@pytest.mark.parametrize("now", [1_767_000_000.123456, 0.1, 1e-7])
@pytest.mark.parametrize(("operation", "kwargs"), KWARGS)
def test_a_task_sent_event_is_byte_for_byte_the_dumps_of_its_dict(operation: Operation, kwargs: dict[str, Any], now: float) -> None:
    built = build_sent_event(operation, "job-\u2603", kwargs, now)
    tag = json.loads(built)["properties"]["delivery_tag"]
    assert built == reference_sent_event(operation, "job-\u2603", kwargs, now, tag)


def test_each_message_has_a_delivery_tag_of_its_own() -> None:
    kwargs = {"storeId": "s1", "shoppingTripId": "t1"}
    tags = {json.loads(build_message(Operation.CANCEL, "j", kwargs))["properties"]["delivery_tag"] for _ in range(100)}
    assert len(tags) == 100
