"""Putting work on each system's queues: payq through its producer, the peers with pipelined raw writes.

The peers' messages are written the way their own clients write them (a
Celery protocol-2 message LPUSHed onto kombu's list; a Dramatiq message in its
``.msgs`` hash plus its id on the queue list), only pipelined, so that filling
20,000 jobs does not take longer than draining them.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from benchmarks.calls import CAPTURE, FEEDBACK
from payapi import wire
from payapi.models import CancelRequest, CaptureRequest, FeedbackRequest, parse_request
from tasks.producer import Producer, prepare
from tasks.store.records import NewJob

STORE = "bench-store"
AMOUNT = {"amount": "12.34", "code": "USD"}
_CHUNK = 2000


def capture_fields(trip: str) -> dict[str, Any]:
    """The wire fields of the benchmark's capture of ``trip``."""
    return {"storeId": STORE, "shoppingTripId": trip, "amount": dict(AMOUNT)}


def trips(tag: str, count: int) -> list[str]:
    """``count`` distinct trip ids for one run."""
    return [f"{tag}-{i}" for i in range(count)]


def payq_captures(trip_ids: Iterable[str]) -> list[NewJob]:
    """Validated capture jobs, as ``payq enqueue --file`` prepares them."""
    return [prepare("capture", capture_fields(t)) for t in trip_ids]


def payq_publish(producer: Producer, jobs: list[NewJob]) -> None:
    """Publish in the CLI's chunks."""
    for start in range(0, len(jobs), _CHUNK):
        producer.publish(jobs[start:start + _CHUNK])


def api_bodies(trip: str, settled_at: int) -> list[tuple[str, str]]:
    """The two POSTs payq makes for a trip (capture, then its report), as (path, body) with payq's exact bytes."""
    capture = parse_request(CaptureRequest, capture_fields(trip))
    report = parse_request(FeedbackRequest, {
        "storeId": STORE, "shoppingTripId": trip, "totalAmount": dict(AMOUNT), "settledAmount": dict(AMOUNT),
        "paymentStatusTime": settled_at,
    })
    return [(CAPTURE, wire.dumps(capture)), (FEEDBACK, wire.dumps(report))]


def cancel_body(trip: str) -> str:
    """The body of payq's cancel of ``trip``, with payq's exact bytes."""
    return wire.dumps(parse_request(CancelRequest, {"storeId": STORE, "shoppingTripId": trip}))


def celery_message(task: str, queue: str, args: list[Any]) -> str:
    """A Celery protocol-2 message for ``task(*args)`` as kombu's Redis transport stores it."""
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return json.dumps({
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None, "expires": None, "group": None,
            "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id, "parent_id": None,
            "argsrepr": repr(tuple(args)), "kwargsrepr": "{}", "origin": "bench", "ignore_result": True,
            "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0, "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    })


def celery_publish(client: redis.Redis, task: str, queue: str, posts: Sequence[tuple[str, ...]]) -> None:
    """LPUSH one message per (path, body), pipelined; kombu's workers BRPOP, so the first pushed runs first.

    Each tuple is the task's positional arguments: (path, body) for :mod:`benchmarks.bare_celery`.
    """
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(posts), _CHUNK):
        pipe.lpush(queue, *[celery_message(task, queue, list(args)) for args in posts[start:start + _CHUNK]])
    pipe.execute()


def dramatiq_publish(client: redis.Redis, queue: str, actor: str, posts: Sequence[tuple[str, ...]], namespace: str = "dramatiq") -> None:
    """What Dramatiq's enqueue script does per message (HSET payload, RPUSH id), pipelined.

    Each tuple is the actor's positional arguments: (path, body) for :mod:`benchmarks.bare_dramatiq`.
    """
    from dramatiq import Message

    pipe = client.pipeline(transaction=False)
    for index, args in enumerate(posts):
        redis_id = str(uuid.uuid4())
        message: Message[Any] = Message(queue_name=queue, actor_name=actor, args=tuple(args), kwargs={}, options={"redis_message_id": redis_id})
        pipe.hset(f"{namespace}:{queue}.msgs", redis_id, message.encode())
        pipe.rpush(f"{namespace}:{queue}", redis_id)
        if index % _CHUNK == _CHUNK - 1:
            pipe.execute()
    pipe.execute()
