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

Both are filled into templates made once per operation (:class:`_Template`):
only a job's id, kwargs, trace context, time and delivery tag differ from one
message to the next, and building each as a dict for ``json.dumps`` cost a
producer about 25 µs a message, a third of its time per job in a bulk publish.
The text is what ``json.dumps`` makes of the dict, byte for byte
(tests/unit/test_message_templates.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import uuid
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any

from payapi import wire
from payapi.operations import OPERATIONS, Operation

_ORIGIN = f"payq-producer-{os.getpid()}@{socket.gethostname()}"
_dumps = json.dumps


@dataclass(frozen=True)
class WireKwargs:
    """A job's kwargs as every writer of them writes: exact amounts (:func:`payapi.wire.exact`) as JSON, and their ``repr`` for Flower."""

    json: str
    repr: str

    @classmethod
    def of(cls, kwargs: dict[str, Any]) -> WireKwargs:
        exact = wire.exact(kwargs)
        return cls(_dumps(exact), repr(exact))


def build_message(operation: Operation, task_id: str, kwargs: dict[str, Any], traceparent: str = "") -> str:
    """The JSON kombu stores in the Redis list for a Celery task called with ``kwargs``.

    ``traceparent``, the job's trace context (:mod:`tasks.tracing`), travels as a
    message header of that name, as Celery's OpenTelemetry instrumentation
    carries it; a worker reads it as ``task.request.traceparent``. Without
    one the message is exactly what it always was. Amounts are written as
    their exact digits (:func:`payapi.wire.exact`).
    """
    return message_of(operation, task_id, WireKwargs.of(kwargs), traceparent)


def message_of(operation: Operation, task_id: str, kwargs: WireKwargs, traceparent: str = "") -> str:
    """:func:`build_message` of kwargs already in their wire form."""
    body = f'[[], {kwargs.json}, {{"callbacks": null, "errbacks": null, "chain": null, "chord": null}}]'
    template = _TRACED_MESSAGE[operation] if traceparent else _MESSAGE[operation]
    return template.fill(
        body=_quoted(base64.b64encode(body.encode()).decode()), id=_quoted(task_id), kwargsrepr=_quoted(kwargs.repr),
        traceparent=_quoted(traceparent), delivery_tag=_quoted(str(uuid.uuid4())),
    )


def sent_event_channel_of(client: Any) -> str:
    """:func:`sent_event_channel` for the database ``client`` (sync or async redis-py) talks to."""
    return sent_event_channel(int(client.connection_pool.connection_kwargs.get("db", 0)))


def sent_event_channel(db: int) -> str:
    """The Redis pub/sub channel kombu's fanout uses for Celery's ``task-sent`` events on database ``db``."""
    return f"/{db}.celeryev/task.sent"


def build_sent_event(operation: Operation, task_id: str, kwargs: dict[str, Any], now: float) -> str:
    """The ``task-sent`` event Celery would publish with ``task_send_sent_event``, so Flower sees the job queued (amounts exact, as in its message)."""
    return sent_event_of(operation, task_id, WireKwargs.of(kwargs), now)


def sent_event_of(operation: Operation, task_id: str, kwargs: WireKwargs, now: float) -> str:
    """:func:`build_sent_event` of kwargs already in their wire form."""
    event = _SENT_EVENT[operation].fill(
        id=_quoted(task_id), kwargsrepr=_quoted(kwargs.repr), pid=str(os.getpid()), timestamp=_dumps(now))
    return _SENT_EVENT_MESSAGE.fill(body=_quoted(base64.b64encode(event.encode()).decode()), delivery_tag=_quoted(str(uuid.uuid4())))


class _Template:
    """JSON text with holes: ``json.dumps`` of a shape whose ``"@@name@@"`` strings are filled with JSON text, byte for byte the dumps of the filled shape."""

    def __init__(self, shape: dict[str, Any]) -> None:
        pieces = re.split(r'"@@(\w+)@@"', _dumps(shape))
        self._literals, self._names = pieces[0::2], pieces[1::2]

    def fill(self, **values: str) -> str:
        out = [self._literals[0]]
        for name, literal in zip(self._names, self._literals[1:], strict=True):
            out += (values[name], literal)
        return "".join(out)


def _hole(name: str) -> str:
    return f"@@{name}@@"


def _message_shape(operation: Operation, traced: bool) -> dict[str, Any]:
    name, queue = OPERATIONS[operation].task, OPERATIONS[operation].queue
    headers: dict[str, Any] = {
        "lang": "py",
        "task": name,
        "id": _hole("id"),
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": _hole("id"),
        "parent_id": None,
        "argsrepr": "()",
        "kwargsrepr": _hole("kwargsrepr"),
        "origin": _ORIGIN,
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    if traced:
        headers["traceparent"] = _hole("traceparent")
    return {
        "body": _hole("body"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": _hole("id"),
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            # unique per publish: kombu tracks unacknowledged messages by this tag
            "delivery_tag": _hole("delivery_tag"),
        },
    }


def _sent_event_shape(operation: Operation) -> dict[str, Any]:
    return {
        "type": "task-sent",
        "uuid": _hole("id"),
        "root_id": _hole("id"),
        "parent_id": None,
        "name": OPERATIONS[operation].task,
        "args": "()",
        "kwargs": _hole("kwargsrepr"),
        "retries": 0,
        "eta": None,
        "expires": None,
        "queue": OPERATIONS[operation].queue,
        "exchange": "",
        "routing_key": OPERATIONS[operation].queue,
        "hostname": _ORIGIN,
        "utcoffset": 0,
        "pid": _hole("pid"),  # the publishing process's, at each publish (a producer may fork)
        "clock": 0,
        "timestamp": _hole("timestamp"),
    }


_MESSAGE = {op: _Template(_message_shape(op, traced=False)) for op in OPERATIONS}
_TRACED_MESSAGE = {op: _Template(_message_shape(op, traced=True)) for op in OPERATIONS}
_SENT_EVENT = {op: _Template(_sent_event_shape(op)) for op in OPERATIONS}
_SENT_EVENT_MESSAGE = _Template({
    "body": _hole("body"),
    "content-encoding": "utf-8",
    "content-type": "application/json",
    "headers": {"hostname": _ORIGIN},
    "properties": {
        "delivery_mode": 1,
        "delivery_info": {"exchange": "celeryev", "routing_key": "task.sent"},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": _hole("delivery_tag"),
    },
})
