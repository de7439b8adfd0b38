"""What a job looks like on the wire: its Celery message and its ``task-sent`` event.

payq writes Celery protocol-2 messages straight onto kombu's Redis lists so
that "record the job, publish it" is one atomic Redis script (see
:mod:`tasks.store.records`). A message built here is, field by field and in
the same order, what ``apply_async`` publishes to the same queue (its body
byte for byte), but for four fields: ``origin`` names payq's producer,
``timelimit`` is left to the worker's own ``task_time_limit``, ``reply_to`` is
empty (payq keeps no results) and ``delivery_tag`` is a uuid of its own;
tests/jobs/test_messages.py compares the two. Task names and queues come from
the table of operations.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any

from payapi import wire
from payapi.operations import OPERATIONS, Operation

_ORIGIN = f"payq-producer-{os.getpid()}@{socket.gethostname()}"


def build_message(operation: Operation, task_id: str, kwargs: dict[str, Any], traceparent: str = "") -> str:
    """The JSON kombu stores in the Redis list for a Celery task called with ``kwargs``.

    ``traceparent``, the job's trace context (:mod:`tasks.tracing`), travels as a
    message header of that name, as Celery's OpenTelemetry instrumentation
    carries it; a worker reads it as ``task.request.traceparent``. Without
    one the message is exactly what it always was. Amounts are written as
    their exact digits (:func:`payapi.wire.exact`).
    """
    kwargs = wire.exact(kwargs)
    name = OPERATIONS[operation].task
    queue = OPERATIONS[operation].queue
    body = json.dumps([[], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    headers: dict[str, Any] = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "()",
        "kwargsrepr": repr(kwargs),
        "origin": _ORIGIN,
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    if traceparent:
        headers["traceparent"] = traceparent
    message = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            # unique per publish: kombu tracks unacknowledged messages by this tag
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message)


def sent_event_channel_of(client: Any) -> str:
    """:func:`sent_event_channel` for the database ``client`` (sync or async redis-py) talks to."""
    return sent_event_channel(int(client.connection_pool.connection_kwargs.get("db", 0)))


def sent_event_channel(db: int) -> str:
    """The Redis pub/sub channel kombu's fanout uses for Celery's ``task-sent`` events on database ``db``."""
    return f"/{db}.celeryev/task.sent"


def build_sent_event(operation: Operation, task_id: str, kwargs: dict[str, Any], now: float) -> str:
    """The ``task-sent`` event Celery would publish with ``task_send_sent_event``, so Flower sees the job queued (amounts exact, as in its message)."""
    kwargs = wire.exact(kwargs)
    event = {
        "type": "task-sent",
        "uuid": task_id,
        "root_id": task_id,
        "parent_id": None,
        "name": OPERATIONS[operation].task,
        "args": "()",
        "kwargs": repr(kwargs),
        "retries": 0,
        "eta": None,
        "expires": None,
        "queue": OPERATIONS[operation].queue,
        "exchange": "",
        "routing_key": OPERATIONS[operation].queue,
        "hostname": _ORIGIN,
        "utcoffset": 0,
        "pid": os.getpid(),
        "clock": 0,
        "timestamp": now,
    }
    message = {
        "body": base64.b64encode(json.dumps(event).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": _ORIGIN},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": "celeryev", "routing_key": "task.sent"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message)
