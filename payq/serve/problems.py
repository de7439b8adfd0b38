"""Every refusal of the intake as an RFC 9457 problem (``application/problem+json``).

A problem has ``type`` (a URN naming the kind, which clients switch on),
``title`` (the same for every problem of that type), ``status``, ``detail``
(this occurrence, in words) and, where input was at fault, ``errors``: one
``{field, rule}`` per broken rule, with ``index`` (the job's position) in a
batch and, for a trip's rules, the rule's name in ``rule`` and the sentence in
``detail``. Routes raise :class:`Problem`; the intake's routes answer it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from payapi.errors import FieldDifference, FieldProblem
from payapi.operations import OPERATIONS, Operation
from tasks.jobs.books import TripRuleViolation

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 5  # what a 503 asks for: Redis restarts or fails over in about that long


class ProblemResponse(JSONResponse):
    """A JSON response sent as ``application/problem+json``."""

    media_type = PROBLEM_JSON


class ProblemItem(BaseModel):
    """One broken rule: the job (``index``, in a batch), the field (a dotted wire path) and the rule."""

    index: int | None = Field(None, description="The job's position in the batch (0-based); absent for POST /v1/jobs.")
    field: str = Field(description="Dotted wire path of the field, e.g. `amount.amount`; `(body)` for the job as a whole.")
    rule: str = Field(description="The rule broken: a sentence (422, 403), or a trip rule's name such as `over-refund` (409).")
    detail: str | None = Field(None, description="For a trip rule (409): the facts, e.g. the captured and refunded amounts.")
    stored: Any = Field(None, description="For a job sent again with other fields (409 `job-conflict`): the value on record, in its wire form.")
    sent: Any = Field(None, description="For a job sent again with other fields (409 `job-conflict`): the value this request sent.")


class ProblemDetails(BaseModel):
    """An RFC 9457 problem document (for the OpenAPI description; :class:`Problem` writes them)."""

    type: str = Field(description="The kind of problem, a URN such as `urn:payq:problem:invalid-job`; clients switch on it.")
    title: str = Field(description="The same for every problem of this type.")
    status: int = Field(description="The HTTP status.")
    detail: str = Field(description="This occurrence, in words.")
    errors: list[ProblemItem] | None = Field(None, description="Each broken rule, where input was at fault.")
    jobs: list[dict[str, Any]] | None = Field(None, description="A batch refused 409 `job-conflict`: each job's own answer, as a 202 lists them.")


@dataclass(eq=False)  # an exception compares by identity and stays hashable
class Problem(Exception):
    """A refusal: raise it in a route and the client gets it as problem JSON with ``status`` and ``headers``."""

    status: int
    kind: str
    title: str
    detail: str
    errors: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # members beyond RFC 9457's, e.g. a batch's per-job answers

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        """The problem document."""
        doc: dict[str, Any] = {"type": f"urn:payq:problem:{self.kind}", "title": self.title, "status": self.status, "detail": self.detail}
        if self.errors is not None:
            doc["errors"] = self.errors
        doc.update(self.extra)
        return doc

    def response(self) -> ProblemResponse:
        """The HTTP answer."""
        return ProblemResponse(self.body(), status_code=self.status, headers=self.headers)


def item(problem: FieldProblem, index: int | None = None) -> dict[str, Any]:
    """A field problem as an ``errors`` entry."""
    entry: dict[str, Any] = {"index": index} if index is not None else {}
    entry.update(field=problem.field, rule=problem.rule)
    return entry


def unauthorized(detail: str, *, invalid_token: bool) -> Problem:
    """401: no usable bearer token (``invalid_token``: one was given and payq does not know it)."""
    challenge = 'Bearer realm="payq"' + (', error="invalid_token"' if invalid_token else "")
    return Problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def forbidden(detail: str, errors: list[dict[str, Any]] | None = None) -> Problem:
    """403: the token may not use the store this names."""
    return Problem(403, "forbidden-store", "Store not allowed for this token", detail, errors)


def not_found(detail: str) -> Problem:
    """404: no such job or trip (for this token)."""
    return Problem(404, "not-found", "Not found", detail)


def too_large(limit: int) -> Problem:
    """413: the body is longer than ``limit`` bytes, answered as soon as that is known.

    The connection stays open: closing it while the client still sends would
    reset it (the client's write fails with EPIPE and it never reads the 413).
    uvicorn drops whatever more of the body arrives, never keeping it, and
    closes the connection after its keep-alive timeout (5 s) if the client
    has not finished by then.
    """
    return Problem(413, "body-too-large", "Request body too large", f"the body must be at most {limit} bytes")


def malformed(detail: str) -> Problem:
    """400: the body is not JSON (or not UTF-8, or its Content-Length is not a number)."""
    return Problem(400, "malformed-body", "Malformed request body", detail, [{"field": "(body)", "rule": detail}])


def invalid(errors: list[dict[str, Any]]) -> Problem:
    """422: jobs that break the models' rules; nothing was written."""
    return Problem(422, "invalid-job", "Invalid job", f"{len(errors)} problem(s); nothing was enqueued", errors)


def invalid_request(errors: list[dict[str, Any]]) -> Problem:
    """422: a path or query parameter breaks its rule (a body's are :func:`invalid`)."""
    return Problem(422, "invalid-request", "Invalid request", f"{len(errors)} problem(s) in the request's path or query", errors)


def trip_rules(violation: TripRuleViolation, batch: bool) -> Problem:
    """409: jobs that break their trip's rules (over-refund, capture after cancel, ...); nothing was written."""
    errors = []
    for breach in violation.breaches:
        problem = breach.problem()
        entry: dict[str, Any] = {"index": breach.index} if batch else {}
        entry.update(field=problem.field, rule=breach.rule.value, detail=problem.rule)
        errors.append(entry)
    rules = ", ".join(dict.fromkeys(b.rule.value for b in violation.breaches))
    return Problem(409, "trip-rule", "Refused by the trip's rules", f"{rules}; nothing was enqueued", errors)


def conflict_errors(differences: Sequence[FieldDifference], stores: frozenset[str], *, batch: bool) -> list[dict[str, Any]]:
    """A refused resend's ``errors``: each differing field with the stored and the sent value (``index`` in a batch).

    A refund's id names no store: one whose id holds another store's refund
    is named without a single value of that refund, so an answer never tells
    one store what another has.
    """
    if not differences:
        return []
    first = differences[0]
    where: dict[str, Any] = {"index": first.index} if batch else {}
    if any(d.field == "storeId" and d.stored not in stores for d in differences):
        key = ", ".join(OPERATIONS[Operation(first.job_id.partition(":")[0])].key_fields)
        return [{**where, "field": key, "rule": "is already the id of another job, not of this token's stores: make a new one"}]
    return [{**({"index": d.index} if batch else {}), "field": d.field, "rule": d.rule, "stored": d.stored, "sent": d.sent}
            for d in differences]


def job_conflict(errors: list[dict[str, Any]], jobs: list[dict[str, Any]] | None = None) -> Problem:
    """409: a job id that holds a different job; nothing of it was written (``jobs``: a batch's per-job answers)."""
    named = list(dict.fromkeys(str(e["field"]) for e in errors))
    return Problem(409, "job-conflict", "Conflicts with the job enqueued before under its id",
                   f"a job with this id was enqueued before with other fields ({', '.join(named)}); nothing was changed",
                   errors, extra={"jobs": jobs} if jobs is not None else {})


def store_backlog(store: str, open_jobs: int, new_jobs: int, cap: int, retry_after: int, in_batch: bool) -> Problem:
    """429: the store has ``open_jobs`` open and may have at most ``cap`` (``PAYQ_STORE_BACKLOG_CAP``); nothing was written."""
    rule = f"store {store!r} has {open_jobs} jobs open and may have at most {cap}: {new_jobs} more would pass it"
    return Problem(429, "store-backlog", "Too many open jobs for this store",
                   f"{rule}; nothing was enqueued. Send the " + ("jobs" if in_batch else "job") + " again after Retry-After seconds.",
                   [{"field": "storeId", "rule": rule}], headers={"Retry-After": str(retry_after)})


def unavailable(detail: str) -> Problem:
    """503: Redis cannot be reached (or refuses writes); nothing was written, try again after ``Retry-After``."""
    return Problem(503, "unavailable", "Service unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def not_ready(detail: str) -> Problem:
    """503 from ``/readyz``: this instance cannot serve ``/v1`` now (Redis unreachable, or too few replicas in sync); take it out of rotation."""
    return Problem(503, "not-ready", "Not ready", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


# what the web framework refuses before a route runs (no such route, a method the route does not take ...)
_HTTP_KINDS = {
    400: ("malformed-request", "Malformed request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    503: ("unavailable", "Service unavailable"),
}


def from_http_error(status: int, detail: object, method: str, path: str, headers: Mapping[str, str] | None) -> Problem:
    """The framework's own refusal (``HTTPException``) as a problem, worded for the client, its headers (Allow, WWW-Authenticate) kept."""
    kind, title = _HTTP_KINDS.get(status, (f"http-{status}", f"HTTP {status}"))
    text = detail if isinstance(detail, str) else ""
    if status == 404 and text in ("", "Not Found"):
        text = f"there is no route {method} {path} (GET /openapi.json lists every route)"
    elif status == 405:
        allowed = (headers or {}).get("allow") or (headers or {}).get("Allow")
        text = f"{path} does not take {method}" + (f"; it takes {allowed}" if allowed else "")
    elif not text:
        text = title
    return Problem(status, kind, title, text, headers=dict(headers or {}))


def internal() -> Problem:
    """500: a fault of payq's own (logged with its traceback)."""
    return Problem(500, "internal", "Internal server error", "payq failed to handle the request; it is logged")
