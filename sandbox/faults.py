"""Fault scripts: which requests the sandbox answers badly, and how.

A script is JSON, ``{"rules": [rule, ...]}``; each rule picks requests by
endpoint (and optionally store and trip) and hands out faults from a sequence
or with a probability. A script may also carry ``"rate_limits"`` (see
:mod:`sandbox.ratelimit`), which replace the command line's while it is in
force. Parsing and selection are pure: the clock and the randomness are
injected, so tests can pin both.

A fault is an object or a shorthand string::

    "429"  "429 Retry-After: 3"  "503 retryAfter 2"  "500 html"  "401"
    "200" / "pass"   "reset"   "hang 30"   "truncate"   "malformed"   "extra"

See :func:`parse_fault` for the object form and :func:`parse_script` for rules.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

from payapi.operations import API_OPERATIONS
from sandbox.ratelimit import RateLimitError, RateLimits, parse_limits

FaultKind = Literal["status", "pass", "reset", "hang", "truncate", "malformed", "extra"]
ENDPOINTS = tuple(op.value for op in API_OPERATIONS)  # a rule names its endpoint by the operation
DEFAULT_HANG_SECONDS = 30.0

# Kinds that answer from the ledger (or could) are applied to it unless told otherwise;
# kinds that lose the answer are not, so by default a lost response is a lost request.
_PROCESS_BY_DEFAULT: dict[FaultKind, bool] = {
    "status": False, "pass": True, "reset": False, "hang": False, "truncate": False, "malformed": True, "extra": True,
}
_DEFAULT_ERROR_MSG = {
    400: "BadRequestException",
    429: "Too Many Requests",
    500: "ServiceException",
    503: "ServiceUnavailableException",
}
_SIMPLE_KINDS = ("pass", "reset", "truncate", "malformed", "extra")
_FAULT_KEYS = {"kind", "status", "headers", "body", "seconds", "process"}
_RULE_KEYS = {
    "endpoint", "storeId", "shoppingTripId", "sequence", "per_trip", "probability", "fault", "seed", "latency_ms", "for_seconds",
}
_HEADER_SHORTHAND = re.compile(r"([A-Za-z0-9-]+):\s*(.*)")
_RETRY_AFTER_SHORTHAND = re.compile(r"retryAfter\s+(\S+)")


class FaultScriptError(ValueError):
    """A fault script that cannot be used; the message says where (``rules[1].sequence[0]``) and why."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One bad answer. ``status``/``headers``/``body`` are used by ``status`` faults, ``seconds`` by ``hang``.

    ``process`` says whether the request is applied to the ledger before the
    bad answer goes out (a capture that was charged but whose 200 got lost).
    """

    kind: FaultKind
    process: bool
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    seconds: float = 0.0


PASS = Fault("pass", process=True)


@dataclass(frozen=True, slots=True)
class Selection:
    """What to do with one request: the fault (``None``: answer normally) and extra latency."""

    fault: Fault | None
    latency_ms: float = 0.0


NO_FAULT = Selection(None)


def _status_fault(status: int, headers: Mapping[str, str], body: Any, *, html: bool = False, process: bool = False) -> Fault:
    # A status fault always has a body and a content type, so the client sees a plausible answer.
    lowered = {k.lower() for k in headers}
    extra: list[tuple[str, str]] = []
    if html:
        phrase = _phrase(status)
        raw = f"<html><head><title>{status} {phrase}</title></head><body><h1>{status} {phrase}</h1></body></html>".encode()
        content_type = "text/html; charset=UTF-8"
    elif body is None:
        raw = json.dumps({"errorMsg": _DEFAULT_ERROR_MSG.get(status, _phrase(status))}).encode()
        content_type = "application/json"
    elif isinstance(body, str):
        raw, content_type = body.encode(), "text/plain; charset=UTF-8"
    else:
        raw, content_type = json.dumps(body).encode(), "application/json"
    if status == 400 and "x-amzn-errortype" not in lowered:
        extra.append(("x-amzn-ErrorType", "BadRequestException"))
    if status in (204, 304):
        raw = b""  # these statuses cannot carry a body
    elif "content-type" not in lowered:
        extra.append(("Content-Type", content_type))
    return Fault("status", process=process, status=status, headers=(*headers.items(), *extra), body=raw)


@lru_cache(maxsize=64)
def too_many_requests(retry_after: int) -> Fault:
    """The rate limiter's answer: the same 429 as the ``"429 Retry-After: N"`` fault (cached: one per N)."""
    return _status_fault(429, {"Retry-After": str(retry_after)}, None)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _check_status(value: Any, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 200 <= value <= 599:
        raise FaultScriptError(f"{where}: status must be an integer from 200 to 599, got {value!r}")
    return value


def _check_seconds(value: Any, where: str, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise FaultScriptError(f"{where}: {name} must be a number of seconds, got {value!r}") from None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise FaultScriptError(f"{where}: {name} must be a non-negative number, got {value!r}")
    return float(value)


def parse_shorthand(text: str, where: str = "fault") -> Fault:
    """Parse a shorthand string such as ``"503 retryAfter 2"`` or ``"hang 30"``."""
    words = text.strip()
    head, _, rest = words.partition(" ")
    rest = rest.strip()
    if head in _SIMPLE_KINDS and not rest:
        kind: FaultKind = head  # type: ignore[assignment]  # narrowed by the membership test
        return Fault(kind, process=_PROCESS_BY_DEFAULT[kind])
    if head == "hang":
        seconds = _check_seconds(rest, where, "hang seconds") if rest else DEFAULT_HANG_SECONDS
        return Fault("hang", process=False, seconds=seconds)
    if not head.isdigit():
        raise FaultScriptError(f"{where}: unknown fault {text!r} (expected a status such as \"500\", or pass, reset, "
                               "hang N, truncate, malformed, extra)")
    status = _check_status(int(head), where)
    if status == 200 and not rest:
        return PASS
    if not rest:
        return _status_fault(status, {}, None)
    if rest == "html":
        return _status_fault(status, {}, None, html=True)
    if match := _RETRY_AFTER_SHORTHAND.fullmatch(rest):
        body = {"errorMsg": _DEFAULT_ERROR_MSG.get(status, _phrase(status)), "retryAfter": match.group(1)}
        return _status_fault(status, {}, body)
    if match := _HEADER_SHORTHAND.fullmatch(rest):
        return _status_fault(status, {match.group(1): match.group(2)}, None)
    raise FaultScriptError(f"{where}: cannot read {rest!r} in {text!r} (expected html, retryAfter N or Header-Name: value)")


def parse_fault(value: Any, where: str = "fault") -> Fault:
    """Parse a fault: a shorthand string, or an object.

    Object form: ``{"status": 429, "headers": {...}, "body": {...} | "raw"}`` or
    ``{"kind": "pass" | "reset" | "hang" | "truncate" | "malformed" | "extra", "seconds": N}``;
    either may carry ``"process": true | false``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        return parse_shorthand(value, where)
    if not isinstance(value, dict):
        raise FaultScriptError(f"{where}: a fault is a string or an object, got {type(value).__name__}")
    unknown = sorted(set(value) - _FAULT_KEYS)
    if unknown:
        raise FaultScriptError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kind = value.get("kind", "status" if "status" in value else None)
    if kind not in _PROCESS_BY_DEFAULT:
        raise FaultScriptError(f"{where}: kind must be one of {', '.join(_PROCESS_BY_DEFAULT)}, got {kind!r}")
    process = value.get("process", _PROCESS_BY_DEFAULT[kind])
    if not isinstance(process, bool):
        raise FaultScriptError(f"{where}: process must be true or false, got {process!r}")
    if kind != "status" and ({"status", "headers", "body"} & set(value)):
        raise FaultScriptError(f"{where}: status, headers and body belong to status faults, not {kind!r}")
    if kind != "hang" and "seconds" in value:
        raise FaultScriptError(f"{where}: seconds belongs to hang faults, not {kind!r}")
    if kind == "pass":
        return PASS  # "handle normally" always means applying it to the ledger
    if kind == "hang":
        seconds = _check_seconds(value.get("seconds", DEFAULT_HANG_SECONDS), where, "seconds")
        return Fault("hang", process=process, seconds=seconds)
    if kind != "status":
        return Fault(kind, process=process)
    status = _check_status(value.get("status"), where)
    headers = value.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str | int) for k, v in headers.items()):
        raise FaultScriptError(f"{where}: headers must be an object of header names to string values")
    body = value.get("body")
    if body is not None and not isinstance(body, str | dict | list):
        raise FaultScriptError(f"{where}: body must be a JSON object, a list or a raw string")
    return _status_fault(status, {k: str(v) for k, v in headers.items()}, body, process=process)


@dataclass(slots=True)
class Rule:
    """One rule of a script: which requests it picks, and the faults and latency it gives them."""

    endpoint: str
    store_id: str | None = None
    trip_id: str | None = None
    sequence: tuple[Fault, ...] | None = None
    per_trip: bool = False
    fault: Fault | None = None
    probability: float = 1.0
    latency_ms: float = 0.0
    for_seconds: float | None = None
    rng: random.Random = field(default_factory=random.Random)
    # where the sequence stands: one position, or one per (storeId, shoppingTripId) under per_trip
    _next: int = field(default=0, init=False, repr=False)
    _next_by_trip: dict[tuple[str | None, str | None], int] = field(default_factory=dict, init=False, repr=False)

    def matches(self, endpoint: str, store_id: str | None, trip_id: str | None) -> bool:
        """Whether the request is one this rule is about (ignoring whether it has anything left to give)."""
        return (
            (self.endpoint == "*" or self.endpoint == endpoint)
            and (self.store_id is None or self.store_id == store_id)
            and (self.trip_id is None or self.trip_id == trip_id)
        )

    def exhausted(self, store_id: str | None, trip_id: str | None) -> bool:
        """A sequence rule whose faults have all been handed out (for this trip, when ``per_trip``)."""
        if self.sequence is None:
            return False
        position = self._next_by_trip.get((store_id, trip_id), 0) if self.per_trip else self._next
        return position >= len(self.sequence)

    def draw(self, store_id: str | None, trip_id: str | None) -> Fault | None:
        """Hand out this request's fault, if any; consumes the sequence or the random stream."""
        if self.sequence is not None:
            if self.per_trip:
                key = (store_id, trip_id)
                position = self._next_by_trip.get(key, 0)
                self._next_by_trip[key] = position + 1
            else:
                position = self._next
                self._next += 1
            return self.sequence[position] if position < len(self.sequence) else None
        if self.fault is not None and self.rng.random() < self.probability:
            return self.fault
        return None


class FaultScript:
    """The rules in force; :meth:`select` decides each request's fault. Rules are tried in order.

    ``rate_limits`` is ``None`` when the script says nothing about them (the
    command line's stay in force) and a mapping, maybe empty, when it does.
    """

    def __init__(
        self, rules: list[Rule], *, clock: Callable[[], float] = time.monotonic, rate_limits: RateLimits | None = None,
    ) -> None:
        self.rules = rules
        self.rate_limits = rate_limits
        self._clock = clock
        self.set_at = clock()  # for_seconds counts from when the script was set

    def select(self, endpoint: str, store_id: str | None, trip_id: str | None) -> Selection:
        """The first rule that yields a fault wins; every rule that applied on the way adds its latency."""
        if not self.rules:
            return NO_FAULT
        latency = 0.0
        elapsed: float | None = None
        for rule in self.rules:
            if not rule.matches(endpoint, store_id, trip_id) or rule.exhausted(store_id, trip_id):
                continue
            if rule.for_seconds is not None:
                elapsed = self._clock() - self.set_at if elapsed is None else elapsed
                if elapsed >= rule.for_seconds:
                    continue
            latency += rule.latency_ms
            fault = rule.draw(store_id, trip_id)
            if fault is not None:
                return Selection(fault, latency)
        return Selection(None, latency) if latency else NO_FAULT


def parse_script(data: Any, *, clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> FaultScript:
    """Build a script from its JSON form, or raise :class:`FaultScriptError` naming the first problem.

    ``rng``, when given, drives every probability rule (tests pin it); otherwise
    each rule draws from its own generator, seeded by the rule's or the script's
    ``seed`` when there is one.
    """
    if not isinstance(data, dict):
        raise FaultScriptError('a fault script is a JSON object: {"rules": [...]}')
    unknown = sorted(set(data) - {"rules", "seed", "rate_limits"})
    if unknown:
        raise FaultScriptError(f"unknown key(s) {', '.join(unknown)} (a script has rules, an optional seed and optional rate_limits)")
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise FaultScriptError("rules must be a list")
    seed = data.get("seed")
    parsed = [_parse_rule(r, f"rules[{i}]", seed, i, rng) for i, r in enumerate(rules)]
    try:
        rate_limits = parse_limits(data["rate_limits"]) if "rate_limits" in data else None
    except RateLimitError as exc:
        raise FaultScriptError(str(exc)) from None
    return FaultScript(parsed, clock=clock, rate_limits=rate_limits)


def _parse_rule(value: Any, where: str, script_seed: Any, index: int, rng: random.Random | None) -> Rule:
    if not isinstance(value, dict):
        raise FaultScriptError(f"{where}: a rule is an object")
    unknown = sorted(set(value) - _RULE_KEYS)
    if unknown:
        raise FaultScriptError(f"{where}: unknown key(s) {', '.join(unknown)}")
    endpoint = value.get("endpoint", "*")
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise FaultScriptError(f"{where}: endpoint must be one of {', '.join(ENDPOINTS)} or *, got {endpoint!r}")
    for key in ("storeId", "shoppingTripId"):
        if key in value and not isinstance(value[key], str):
            raise FaultScriptError(f"{where}: {key} must be a string")
    rule = Rule(endpoint=endpoint, store_id=value.get("storeId"), trip_id=value.get("shoppingTripId"))
    if "sequence" in value:
        if "fault" in value or "probability" in value:
            raise FaultScriptError(f"{where}: a rule has either a sequence or a probability and fault, not both")
        if not isinstance(value["sequence"], list):
            raise FaultScriptError(f"{where}.sequence must be a list of faults")
        rule.sequence = tuple(parse_fault(f, f"{where}.sequence[{i}]") for i, f in enumerate(value["sequence"]))
    elif "fault" in value:
        rule.fault = parse_fault(value["fault"], f"{where}.fault")
        probability = value.get("probability", 1.0)
        if not isinstance(probability, int | float) or isinstance(probability, bool) or not 0 <= probability <= 1:
            raise FaultScriptError(f"{where}: probability must be a number from 0 to 1, got {probability!r}")
        rule.probability = float(probability)
    elif "probability" in value:
        raise FaultScriptError(f"{where}: probability needs a fault")
    per_trip = value.get("per_trip", False)
    if not isinstance(per_trip, bool):
        raise FaultScriptError(f"{where}: per_trip must be true or false")
    rule.per_trip = per_trip
    if "latency_ms" in value:
        rule.latency_ms = _check_seconds(value["latency_ms"], where, "latency_ms")
    if "for_seconds" in value:
        rule.for_seconds = _check_seconds(value["for_seconds"], where, "for_seconds")
    if rule.sequence is None and rule.fault is None and not rule.latency_ms:
        raise FaultScriptError(f"{where}: the rule does nothing (give it a sequence, a fault or latency_ms)")
    seed = value.get("seed", script_seed)
    if rng is not None:
        rule.rng = rng
    elif seed is not None:
        # one seed for the script still gives each rule its own stream
        rule.rng = random.Random(f"{seed}:{index}" if "seed" not in value else str(seed))
    return rule


def load_script(path: Path, *, clock: Callable[[], float] = time.monotonic) -> FaultScript:
    """Read and parse a fault script file; every problem is a :class:`FaultScriptError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FaultScriptError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FaultScriptError(f"{path} is not valid JSON: {exc}") from None
    return parse_script(data, clock=clock)
