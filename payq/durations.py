"""Spans of time as operators type them (``--since 2h``) and read them (``5m`` ago): the CLI's and the console's."""

from __future__ import annotations

import re

from payapi.errors import FieldProblem, InvalidRequest

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str, option: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h``, ``7d`` or ``1w``; ``InvalidRequest`` naming ``option`` otherwise."""
    match = _DURATION.match(value)
    if not match:
        raise InvalidRequest([FieldProblem(option, f"must be a duration like 90s, 15m, 2h or 7d, got {value!r}")])
    return float(match.group(1)) * _UNITS[match.group(2)]


def age(epoch: float | None, now: float) -> str:
    """How long before ``now`` ``epoch`` was, coarsely: ``42s``, ``5m``, ``3h``, ``2d`` (``-`` for none)."""
    if epoch is None:
        return "-"
    seconds = max(0.0, now - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds:.0f}s"
