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


def loads_input(text: str | bytes) -> Any:
    """Parse JSON a store backend sent: as :func:`loads`, but a number in exponent form stays text, for the models to refuse.

    ``1e3`` is a valid JSON number, and as a ``Decimal`` it is 1000 with nothing
    left to tell it from ``1000``: an amount typed as ``1e3`` must be named as
    the mistake it most likely is, not charged as a thousand.
    """
    return json.loads(text, parse_float=_exact_number, parse_constant=NotPlainNumber)


def json_error(exc: ValueError) -> str:
    """Where text is not JSON, for a person who may not write Python: ``at line 1, column 12`` (not the parser's own wording)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"at line {exc.lineno}, column {exc.colno}"
    return "a number or constant it cannot read"


def to_kwargs(model: BaseModel) -> dict[str, Any]:
    """A model as JSON-safe task kwargs: amounts as strings, so no broker serializer can round them."""
    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    converted: dict[str, Any] = convert(model.model_dump(mode="python", exclude_none=True))
    return converted
