"""JSON in and out with money kept exact.

The standard ``json`` module can only write a ``Decimal`` by way of float or
string; the API wants a number with exactly its decimal digits, so amounts are
written here by hand and read back with ``parse_float=Decimal``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from payapi.errors import FieldProblem, InvalidRequest


def dumps(value: Any) -> str:
    """Serialize ``value`` compactly; a ``Decimal`` becomes a JSON number with its exact digits."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python", exclude_none=True)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def loads(text: str | bytes) -> Any:
    """Parse JSON; every number with a fraction or exponent becomes a ``Decimal``, never a float."""
    return json.loads(text, parse_float=Decimal)


class NotPlainNumber(str):
    """A JSON number in exponent form (``1e3``), or ``NaN`` / ``Infinity``: kept as its text, so the field's rule refuses it by name."""


def _exact_number(text: str) -> Decimal | NotPlainNumber:
    if "e" in text or "E" in text:
        return NotPlainNumber(text)
    return Decimal(text)


def _exact_integer(text: str) -> int | Decimal:
    try:
        return int(text)
    except ValueError:
        # past Python's int-digits limit (4,300): still a number, so the field's own rule names it (a Decimal has no such limit)
        return Decimal(text)


Path = tuple[str | int, ...]


class RepeatedKeys(InvalidRequest):
    """A JSON object names the same key twice or more; ``paths`` are where, each ending in the repeated key.

    RFC 8259 leaves such an object's meaning to the reader and I-JSON (RFC
    7493) forbids it: one reader takes the first value, another the last, so a
    gateway or an audit log could see a different charge than payq runs.
    """

    def __init__(self, paths: list[Path]) -> None:
        super().__init__([FieldProblem(dotted(path), REPEATED_KEY) for path in paths])
        self.paths = paths


REPEATED_KEY = "is given more than once in its object: readers differ on which value counts, so payq takes neither"


def dotted(path: Path) -> str:
    """A path as the intake names fields: ``amount.amount``, ``jobs.3.storeId``."""
    return ".".join(str(part) for part in path)


def loads_input(text: str | bytes) -> Any:
    """Parse JSON a store backend sent: as :func:`loads`, but strict where a reader could be misled.

    ``1e3`` is a valid JSON number, and as a ``Decimal`` it is 1000 with nothing
    left to tell it from ``1000``: an amount typed as ``1e3`` stays text, to be
    named as the mistake it most likely is, not charged as a thousand. An
    object that repeats a key raises :class:`RepeatedKeys` naming each one. An
    integer too long for Python's ``int`` is read as a ``Decimal``, for the
    field's own rule to refuse by name.
    """
    repeated: list[tuple[dict[str, Any], str]] = []

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # the json module's own hook, one call per object: a repeat shows as fewer keys than pairs
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    repeated.append((obj, key))
                seen.add(key)
        return obj

    data = json.loads(text, object_pairs_hook=unique_keys, parse_float=_exact_number, parse_int=_exact_integer,
                      parse_constant=NotPlainNumber)
    if repeated:
        raise RepeatedKeys(_paths_of(data, repeated))
    return data


def _paths_of(data: Any, repeated: list[tuple[dict[str, Any], str]]) -> list[Path]:
    """Where each repeated key is in ``data``, in document order: the hook saw each object, not where it sits."""
    keys_of: dict[int, dict[str, None]] = {}
    for obj, key in repeated:
        keys_of.setdefault(id(obj), {})[key] = None  # each key once, however often it was repeated
    found: list[Path] = []
    stack: list[tuple[Path, Any]] = [((), data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            found += [(*path, key) for key in keys_of.get(id(node), [])]
            stack += [((*path, key), value) for key, value in reversed(node.items())]
        elif isinstance(node, list):
            stack += [((*path, index), value) for index, value in reversed(list(enumerate(node)))]
    return found


def json_error(exc: ValueError) -> str:
    """Where text is not JSON, for a person who may not write Python: ``at line 1, column 12`` (not the parser's own wording)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"at line {exc.lineno}, column {exc.colno}"
    return "a number or constant it cannot read"


def to_kwargs(model: BaseModel) -> dict[str, Any]:
    """A model as JSON-safe task kwargs: amounts as strings, so no broker serializer can round them."""
    converted: dict[str, Any] = exact(model.model_dump(mode="python", exclude_none=True))
    return converted


def exact(value: Any) -> Any:
    """``value`` with every ``Decimal`` in it (through dicts, lists and tuples) as the string of its exact digits.

    A job's kwargs as payq keeps them: amounts are strings (``"21.00"``), so
    every writer of a job's arguments (its record, its message, a dead letter)
    writes the same text whichever type a caller used (a ``Decimal`` from
    Celery's own ``send_task``, a string, an int), and no reader can round them.
    """
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [exact(v) for v in value]
    return value


def job_json(kwargs: Any) -> str:
    """A job's kwargs as JSON, amounts as their exact digits (:func:`exact`): the one encoder of every writer of a job's arguments."""
    return json.dumps(exact(kwargs))
