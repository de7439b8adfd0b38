"""The intake's request bodies: read at most so many bytes, parse JSON with exact amounts, validate into jobs.

A job is the JSON of a line of ``payq enqueue --file``: the wire fields plus
``"operation"``. Amounts may be JSON numbers (read as ``Decimal``, never
float: ``19.99`` stays ``19.99``) or strings. One rule is the intake's own:
the key fields the producer would otherwise fill in (a refund's
``refundRequestId``, a report's ``paymentStatusTime``) are required, because
they make the job's id, and over HTTP a client that retries after a lost
answer must name the same job again, not a new one.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from payapi import wire
from payapi.errors import FieldProblem, InvalidRequest
from payapi.models import trip_id_problems
from payapi.operations import lookup
from payq.serve.problems import invalid, item, malformed, too_large
from tasks.producer import prepare
from tasks.store.records import NewJob

JOB_BODY_LIMIT = 64 * 1024            # bytes of one job: a job is a few hundred
BATCH_BODY_LIMIT = 4 * 1024 * 1024    # bytes of a batch: 1,000 jobs of up to 4 KiB each
BATCH_MAX_JOBS = 1000
_REQUIRED_OVER_HTTP = "is required over HTTP: it is part of the job's id, so the store backend makes it once and a retried POST names the same job"


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to pass ``limit`` bytes: from Content-Length, or while reading it (chunked)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise malformed("Content-Length must be a number of bytes")
        if int(declared) > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """The body as JSON, numbers with a fraction or exponent as ``Decimal``; 400 if it is not UTF-8 JSON.

    A repeated key raises :class:`~payapi.wire.RepeatedKeys` (an ``InvalidRequest``: 422 naming each).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed(f"the body is not valid UTF-8 (byte {exc.start + 1})") from None
    try:
        return wire.loads_input(text)
    except RecursionError:
        raise malformed("the body is not valid JSON (nested too deep)") from None
    except ValueError as exc:
        raise malformed(f"the body is not valid JSON ({wire.json_error(exc)})") from None


def job_from(data: Any) -> NewJob:
    """One job from its JSON; :class:`InvalidRequest` naming every field and rule it breaks."""
    if not isinstance(data, dict):
        raise InvalidRequest([FieldProblem("(body)", "must be a JSON object")])
    fields = dict(data)
    operation = fields.pop("operation", None)
    if operation is None:
        raise InvalidRequest([FieldProblem("operation", "is required"), *trip_id_problems(fields)])
    try:
        spec = lookup(operation if isinstance(operation, str) else "")
    except InvalidRequest as exc:
        raise InvalidRequest([*exc.problems, *trip_id_problems(fields)]) from None
    missing = [FieldProblem(name, _REQUIRED_OVER_HTTP) for name in spec.defaults if fields.get(name) is None]
    try:
        job = prepare(spec.operation, fields)
    except InvalidRequest as exc:
        raise InvalidRequest(missing + list(exc.problems)) from None
    if missing:
        raise InvalidRequest(missing)
    return job


def one_job(raw: bytes) -> NewJob:
    """The job of a ``POST /v1/jobs`` body; 400 or 422 naming every problem."""
    try:
        return job_from(parse_json(raw))
    except InvalidRequest as exc:
        raise invalid([item(p) for p in exc.problems]) from None


def batch(raw: bytes) -> list[NewJob]:
    """The jobs of a ``POST /v1/jobs/batch`` body, ``{"jobs": [...]}``; 400 or 422 naming every problem of every job by index."""
    try:
        data = parse_json(raw)
    except wire.RepeatedKeys as exc:
        raise invalid([_repeated_in_batch(path) for path in exc.paths]) from None
    if not isinstance(data, dict):
        raise invalid([item(FieldProblem("(body)", 'must be a JSON object: {"jobs": [...]}'))])
    errors = [item(FieldProblem(name, "is not a known field")) for name in data if name != "jobs"]
    items = data.get("jobs")
    if items is None:
        errors.append(item(FieldProblem("jobs", "is required")))
    elif not isinstance(items, list):
        errors.append(item(FieldProblem("jobs", "must be a JSON array of jobs")))
    elif not 1 <= len(items) <= BATCH_MAX_JOBS:
        errors.append(item(FieldProblem("jobs", f"must hold 1 to {BATCH_MAX_JOBS} jobs, not {len(items)}")))
    if errors or not isinstance(items, list):
        raise invalid(errors)
    jobs: list[NewJob] = []
    for index, entry in enumerate(items):
        try:
            jobs.append(job_from(entry))
        except InvalidRequest as exc:
            errors += [item(p, index) for p in exc.problems]
    if errors:
        raise invalid(errors)
    return jobs


def _repeated_in_batch(path: wire.Path) -> dict[str, Any]:
    """A repeated key in a batch body, a job's by its index as every other problem of a job (``jobs.3.amount.amount``: job 3's ``amount.amount``)."""
    if len(path) > 2 and path[0] == "jobs" and isinstance(path[1], int):
        return item(FieldProblem(wire.dotted(path[2:]), wire.REPEATED_KEY), path[1])
    return item(FieldProblem(wire.dotted(path), wire.REPEATED_KEY))
