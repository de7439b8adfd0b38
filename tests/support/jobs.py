"""What the end-to-end job tests share: reading job records, the sandbox's log, and waiting for a job's end."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from config.settings import Settings
from payapi.client import PaymentClient
from payapi.models import CaptureRequest
from payapi.operations import QUEUES, Operation
from payapi.outcomes import Success
from tasks.jobs import settled
from tasks.redis import keys
from tasks.store import lanes
from tests.support.names import path_of
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess

T = TypeVar("T")
USD_1 = {"amount": "1.00", "code": "USD"}


def calls(api: SandboxProcess, operation: Operation) -> list[dict[str, Any]]:
    """Every request the sandbox received for ``operation``, oldest first."""
    return api.requests(path_of(operation))


def body(entry: dict[str, Any]) -> dict[str, Any]:
    """A logged request's JSON body."""
    parsed: dict[str, Any] = json.loads(entry["body"])
    return parsed


def record(rdb: redis.Redis, job_id: str) -> dict[str, str]:
    """A job's record as payq reads it (empty if there is none): a settled one with its ``kwargs`` and ``result`` (tasks/jobs/settled.py)."""
    stored: dict[str, str] = rdb.hgetall(keys.job(job_id))
    return settled.expand(job_id, stored)


def wait_for_state(rdb: redis.Redis, job_id: str, state: str, timeout: float = 30.0) -> dict[str, str]:
    """Wait until the job's record says ``state``; returns the record. Fails at once on a different final state."""
    final = {"succeeded", "dead"} - {state}

    def reached() -> dict[str, str] | None:
        current = record(rdb, job_id)
        if current.get("state") in final:
            raise AssertionError(f"{job_id} ended {current.get('state')!r}, expected {state!r}: {current}")
        return current if current.get("state") == state else None

    return wait_for(reached, timeout=timeout, what=f"{job_id} to be {state}")


def queued_messages(rdb: redis.Redis) -> int:
    """Messages waiting on every payq queue plus jobs running (delivered, held, not yet acknowledged)."""
    return sum(lanes.depths(rdb, QUEUES).values()) + int(rdb.zcard(keys.LEASES))


def capture_directly(settings: Settings, store: str, trip: str, amount: dict[str, str]) -> None:
    """Charge a trip through the API client, outside the job system, so that it can be refunded."""
    request = CaptureRequest.model_validate({"storeId": store, "shoppingTripId": trip, "amount": amount})
    outcome = PaymentClient(settings).call(Operation.CAPTURE, request)
    assert isinstance(outcome, Success), outcome


def wait_for_value(read: Callable[[], T], expected: T, timeout: float = 30.0, interval: float = 0.05, what: str = "value") -> None:
    """Wait until ``read()`` returns ``expected``; on timeout, say what it returned last."""
    seen: list[T] = []

    def check() -> bool:
        seen[:] = [read()]
        return seen[0] == expected

    try:
        wait_for(check, timeout=timeout, interval=interval, what=what)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what} to be {expected!r}; last {seen[0]!r}") from None

def queued(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The Celery messages on ``queue`` (its own list's, then each store lane's), oldest first: task id, task name and kwargs."""
    found = []
    for raw in lanes.messages(client, queue):
        message = json.loads(raw)
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append({"id": message["headers"]["id"], "task": message["headers"]["task"], "kwargs": kwargs})
    return found


def take_message(client: redis.Redis, queue: str) -> str | None:
    """Take the next message off ``queue`` as a fetch would (its own list first, then the stores' lanes), out of Redis."""
    for name in lanes.lists_of(client, [queue])[queue]:
        if (message := client.rpop(name)) is not None:
            return str(message)
    return None
