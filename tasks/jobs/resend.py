"""Whether a job sent again under an existing id is the same job: the fields that differ, with money compared as amounts.

A job's id is its natural key, so sending a job again is safe and does
nothing, but only while it is the same job. One whose other fields differ
(a capture of 99 where 19.99 is on record) is a different request under the
same id, and taking it as a duplicate would let the sender believe 99 is
being captured. Both sides are compared in their canonical form, the request
model's: amounts as exact decimals (``19.99``, ``19.990`` and ``"19.99"``
are one amount; ``20`` and ``20.00`` too; ``99`` is not), every other field
as its value. Pure: the enqueue script hands over the stored kwargs it read
in the same step that found the record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from payapi import wire
from payapi.errors import FieldDifference, InvalidRequest
from payapi.models import parse_request
from payapi.operations import OPERATIONS, Operation


def differences(operation: Operation, job_id: str, stored: Mapping[str, Any], sent: Mapping[str, Any],
                index: int | None = None) -> list[FieldDifference]:
    """Each field in which ``sent`` differs from ``stored`` (both wire kwargs of ``operation``), in the sent job's field order."""
    old, new = _canonical(operation, stored), _canonical(operation, sent)
    if old is None or new is None:
        old, new = stored, sent  # a record no model reads today: both compared field by field as written
    old, new = dict(_leaves(old)), dict(_leaves(new))
    fields = list(dict.fromkeys([*new, *old]))
    return [FieldDifference(job_id, name, _wire(old.get(name)), _wire(new.get(name)), index)
            for name in fields if old.get(name) != new.get(name)]


def stored_differences(operation: Operation, job_id: str, stored_json: str, sent: Mapping[str, Any],
                       index: int | None = None) -> list[FieldDifference]:
    """:func:`differences` against a record's ``kwargs`` JSON, as any payq wrote it (a record that is not JSON differs as a whole)."""
    try:
        stored = json.loads(stored_json)
    except ValueError:
        return [FieldDifference(job_id, "(job)", stored_json, wire.job_json(dict(sent)), index)]
    if not isinstance(stored, dict):
        return [FieldDifference(job_id, "(job)", stored_json, wire.job_json(dict(sent)), index)]
    return differences(operation, job_id, stored, sent, index)


def _canonical(operation: Operation, kwargs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``kwargs`` through the operation's request model (amounts as ``Decimal``); None if they do not pass it."""
    spec = OPERATIONS.get(operation)
    if spec is None:
        return None
    try:
        return parse_request(spec.request, dict(kwargs)).model_dump(mode="python", exclude_none=True)
    except InvalidRequest:
        return None


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Each leaf of ``value`` with its dotted wire path (``amount.amount``)."""
    if isinstance(value, Mapping):
        for name, inner in value.items():
            yield from _leaves(inner, f"{path}.{name}" if path else str(name))
    else:
        yield path, value


def _wire(value: Any) -> Any:
    """A value as the wire writes it: an amount as its exact digits, a string."""
    return format(value, "f") if isinstance(value, Decimal) else value
