"""What a job looks like on the wire: its id, its queue, its task name, its Celery message.

payq writes Celery protocol-2 messages straight onto kombu's Redis lists so
that "record the job, publish it" is one atomic Redis script (see
:mod:`workers.jobs`); a message built here is byte-for-byte what
``apply_async`` would publish to the same queue.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any

from payapi.outcomes import Operation

TASK_NAMES: dict[Operation, str] = {
    "capture": "payments.capture",
    "cancel": "payments.cancel",
    "refund": "payments.refund",
    "feedback": "payments.report_payment_status",
}
QUEUES: dict[Operation, str] = {
    "capture": "payments.capture",
    "cancel": "payments.cancel",
    "refund": "payments.refund",
    "feedback": "payments.feedback",
}
OPERATION_OF_TASK: dict[str, Operation] = {name: op for op, name in TASK_NAMES.items()}
_ORIGIN = f"payq-producer-{os.getpid()}@{socket.gethostname()}"


def job_id(operation: Operation, kwargs: dict[str, Any]) -> str:
    """The job id from the operation's natural key, so the same job enqueued twice is one job.

    ``:`` cannot occur in any key field (their patterns exclude it), so the id is
    unambiguous and readable: an operator can find a trip's jobs by eye.
    """
    if operation == "refund":
        return f"refund:{kwargs['refundRequestId']}"
    base = f"{operation}:{kwargs['storeId']}:{kwargs['shoppingTripId']}"
    if operation == "feedback":
        return f"{base}:{kwargs['paymentStatusTime']}"
    return base


def build_message(operation: Operation, task_id: str, kwargs: dict[str, Any]) -> str:
    """The JSON kombu stores in the Redis list for a Celery task called with ``kwargs``."""
    name = TASK_NAMES[operation]
    queue = QUEUES[operation]
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


def sent_event_channel(db: int) -> str:
    """The Redis pub/sub channel kombu's fanout uses for Celery's ``task-sent`` events on database ``db``."""
    return f"/{db}.celeryev/task.sent"


def build_sent_event(operation: Operation, task_id: str, kwargs: dict[str, Any], now: float) -> str:
    """The ``task-sent`` event Celery would publish with ``task_send_sent_event``, so Flower sees the job queued."""
    event = {
        "type": "task-sent",
        "uuid": task_id,
        "root_id": task_id,
        "parent_id": None,
        "name": TASK_NAMES[operation],
        "args": "()",
        "kwargs": repr(kwargs),
        "retries": 0,
        "eta": None,
        "expires": None,
        "queue": QUEUES[operation],
        "exchange": "",
        "routing_key": QUEUES[operation],
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
