"""What a settled job's record keeps, and how its full form is read back from it: pure.

A job record lives on after its job succeeded for one reason: it is the job's
idempotency key (a job sent again within the retention is a no-op, or a
conflict when its fields differ). What a store backend or an operator reads
of it then is its outcome: state, when, attempts, the result. So the step
that records a success (``tasks/store/lua/succeed.lua``,
``finish_capture.lua``) compacts the record in the same script:

- the fields only a live job needs go (:data:`DROPPED`: who held it, under
  which delivery and claim, its latest failure and deferral, the outbox's
  marker; the first attempt's time, which for a job that made one is its
  last's), and its operation, which its id says; the attempts and when the
  last began stay, a short summary;
- the wire fields and the result are kept leaf by leaf (``in.amount.amount``
  -> ``"12.34"``, ``out.reconciliationId``), each value JSON, leaving out
  every leaf the job's id already says (:func:`derived`: the trip's ids, a
  capture's report id and settle time; a report's usual answer, :data:`REPORT_TAKEN`),
  and a field that repeats another (:data:`ECHOES`: a report's ``settledAmount``
  when it is its ``totalAmount``).

Each value then stays short, so Redis keeps the record as a listpack (its
``hash-max-listpack-value``, 64 bytes by default): a few hundred bytes
instead of ~1.2 KB as a hash table. :func:`expand` gives back the record as
every reader knows it (``kwargs`` and ``result`` as JSON); :func:`compact`
keeps the JSON whole whenever the leaves would not give back exactly what
was written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from payapi.operations import OPERATIONS, Operation
from tasks.states import JobState

# Fields of a live job's record that a settled one no longer needs (tasks/store/records.py says what each is)
DROPPED: tuple[str, ...] = (
    "op", "kwargs", "result", "delivery", "holder", "claim", "worker", "first_attempt_at", "notified", "failure",
    "deferred_until", "defer", "pace_turn",
)
# A wire field left out of a settled record when it equals another of the job's: (the field, the one it repeats).
# A record without the field's leaves reads it back as the other's (one written before this kept both).
ECHOES: dict[Operation, tuple[str, str]] = {
    Operation.FEEDBACK: ("settledAmount", "totalAmount"),  # a trip paid in full, as every chained report is
}
# What the API answers a payment-status report it takes: a settled report's result (a Rejected one is dead-lettered),
# its leaves left out where they are these. Every report the previous payq compacted kept both leaves.
REPORT_TAKEN: dict[str, Any] = {"status": "Accepted", "reasonCode": "OK"}
REQUEST = "in."   # a leaf of the job's wire fields
RESULT = "out."   # a leaf of its result


def operation_of(job_id: str) -> Operation | None:
    """The operation a job id names (its first part), or None for an id no payq row makes."""
    try:
        return Operation(job_id.split(":", 1)[0])
    except ValueError:
        return None


def derived(job_id: str, settled_at: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The wire fields and result leaves the job's id (and a capture's settle time) already say, and a report's usual answer.

    A key field is derived as its model's type says: a report's
    ``paymentStatusTime`` as an integer.
    """
    operation = operation_of(job_id)
    if operation is None or operation not in OPERATIONS:
        return {}, {}
    spec = OPERATIONS[operation]
    parts = job_id.split(":")[1:]
    if len(parts) != len(spec.key_fields):
        return {}, {}
    request: dict[str, Any] = {}
    for name, value in zip(spec.key_fields, parts, strict=True):
        kind = spec.request.model_fields[name].annotation
        if kind is str:
            request[name] = value
        elif kind is int and value.isdigit():
            request[name] = int(value)
    result: dict[str, Any] = dict(REPORT_TAKEN) if operation is Operation.FEEDBACK else {}
    if operation is Operation.CAPTURE and settled_at and settled_at.isdigit():
        report = OPERATIONS[Operation.FEEDBACK].job_id({**request, "paymentStatusTime": settled_at})  # as execution derives it
        result = {"reportJobId": report, "settledAt": int(settled_at)}
    return request, result


def dropped(kwargs: Mapping[str, Any] | None) -> list[str]:
    """The fields settling deletes: :data:`DROPPED`, but ``kwargs`` when the caller does not know them (they stay as written)."""
    return [name for name in DROPPED if kwargs is not None or name != "kwargs"]


def compact(job_id: str, kwargs: Mapping[str, Any] | None, result: Mapping[str, Any], settled_at: str | None = None) -> list[str]:
    """The fields (name, value, name, value, ...) a settled record keeps of its wire fields and result, once :func:`dropped` went.

    ``kwargs`` None (the caller does not know them): only the result is written, whole.
    """
    if kwargs is None:
        return ["result", json.dumps(dict(result))]
    written = kwargs
    request_said, result_said = derived(job_id, settled_at)
    echo = _echo(job_id)
    if echo is not None and echo[0] in kwargs and kwargs.get(echo[0]) == kwargs.get(echo[1]):
        kwargs = {name: value for name, value in kwargs.items() if name != echo[0]}
    request_leaves = _leaves_beyond(kwargs, request_said, REQUEST)
    result_leaves = _leaves_beyond(result, result_said, RESULT)
    leaves = request_leaves + result_leaves
    # what expand would read back, compared as it is (not as JSON again: the leaves are JSON already)
    request_back, result_back = _restored(job_id, zip(leaves[::2], leaves[1::2], strict=True), request_said, result_said)
    if request_back != dict(written) or result_back != dict(result):
        return ["kwargs", json.dumps(dict(written)), "result", json.dumps(dict(result))]
    return leaves


def expand(job_id: str, record: Mapping[str, str]) -> dict[str, str]:
    """``record`` as every reader knows it: a settled one with its operation, and ``kwargs`` and ``result`` as JSON again, its leaves gone.

    A record that has not succeeded is read as it is. A settled one has no
    ``kwargs`` when compacted (every record payq writes has them until then; a
    cancel whose every field its id says keeps no leaf at all), and keeps them
    whole, as the previous payq did, when its leaves would not give them back.
    """
    if record.get("state") != JobState.SUCCEEDED:
        return dict(record)
    full = {name: value for name, value in record.items() if not name.startswith((REQUEST, RESULT))}
    operation = operation_of(job_id)
    if operation is not None:
        full.setdefault("op", operation.value)
    if full.get("attempts") == "1" and "last_attempt_at" in full:
        full.setdefault("first_attempt_at", full["last_attempt_at"])  # one attempt: the first was the last
    if "kwargs" in record:
        return full
    request, result = _restored(job_id, record.items(), *derived(job_id, record.get("settled_at")))
    full["kwargs"] = json.dumps(request)
    full.setdefault("result", json.dumps(result))
    return full


def _restored(job_id: str, fields: Iterable[tuple[str, str]], request_said: Mapping[str, Any],
              result_said: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The wire fields and result a settled record's ``fields`` (name, value) give back, with what the job's id says (:func:`derived`)."""
    request: dict[str, Any] = dict(request_said)
    result: dict[str, Any] = dict(result_said)
    for name, value in fields:
        if name.startswith(REQUEST):
            _put(request, name[len(REQUEST):], json.loads(value))
        elif name.startswith(RESULT):
            _put(result, name[len(RESULT):], json.loads(value))
    echo = _echo(job_id)
    if echo is not None and echo[0] not in request and echo[1] in request:
        request[echo[0]] = request[echo[1]]
    return request, result


def _echo(job_id: str) -> tuple[str, str] | None:
    operation = operation_of(job_id)
    return ECHOES.get(operation) if operation is not None else None


def _leaves_beyond(value: Mapping[str, Any], said: Mapping[str, Any], prefix: str) -> list[str]:
    """``prefix``-named leaves of ``value`` (name, JSON, ...), but those ``said`` already gives with the same value."""
    fields: list[str] = []
    for path, leaf in _leaves(value):
        if path in said and said[path] == leaf:
            continue
        fields += [prefix + path, json.dumps(leaf, separators=(",", ":"))]
    return fields


def _leaves(value: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    """Each leaf of ``value`` with its dotted path; an empty object is a leaf of its own."""
    for name, inner in value.items():
        here = f"{path}.{name}" if path else str(name)
        if isinstance(inner, Mapping) and inner:
            yield from _leaves(inner, here)
        else:
            yield here, inner


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for name in parents:
        target = target.setdefault(name, {})
    target[last] = value
