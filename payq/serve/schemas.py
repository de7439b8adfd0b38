"""What ``/openapi.json`` says of the intake's bodies: models for the description, never used to parse.

The routes read the raw bytes and validate with the payment API's own models
(:mod:`payq.serve.bodies`), so an amount is never a float on the way; these
models give the same shapes to the OpenAPI document, as named component
schemas (a generated client gets a type for each). The views' models are the
public shapes of :func:`payq.views.public_job` and :func:`~payq.views.public_trip`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from payapi.models import KEY_FIELD_PATTERNS, CancelRequest, CaptureRequest, FeedbackRequest, RefundRequest, StoreId, TripId
from payapi.operations import API_OPERATIONS, OPERATIONS
from payq.serve.bodies import BATCH_MAX_JOBS
from payq.serve.problems import PROBLEM_JSON, ProblemDetails


class CaptureJob(CaptureRequest):
    """A capture: the trip's cart total (greater than 0). Job id `capture:<storeId>:<shoppingTripId>`."""

    operation: Literal["capture"]


class CancelJob(CancelRequest):
    """A cancel of an empty cart's pre-authorisation. Job id `cancel:<storeId>:<shoppingTripId>`."""

    operation: Literal["cancel"]


class RefundJob(RefundRequest):
    """A refund; `refundRequestId` (a UUID the store backend makes once) is its idempotency key. Job id `refund:<refundRequestId>`."""

    operation: Literal["refund"]


class FeedbackJob(FeedbackRequest):
    """A payment-status report (epoch seconds). Job id `feedback:<storeId>:<shoppingTripId>:<paymentStatusTime>`."""

    operation: Literal["feedback"]


JobRequest = Annotated[CaptureJob | CancelJob | RefundJob | FeedbackJob, Field(discriminator="operation")]


class JobBatch(BaseModel):
    """A batch: validated whole, enqueued all or nothing."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobRequest] = Field(min_length=1, max_length=BATCH_MAX_JOBS)


def job_id_pattern() -> str:
    """Every id the table of operations makes (``capture:<storeId>:<shoppingTripId>``, ``refund:<refundRequestId>`` ...), as one pattern."""
    ids = [":".join([operation.value, *(KEY_FIELD_PATTERNS[name] for name in OPERATIONS[operation].key_fields)])
           for operation in API_OPERATIONS]
    return "^(?:" + "|".join(ids) + ")$"


# the path's parameters, validated as the same fields of a body are (422 naming the parameter, never echoing it)
StoreIdPath = Annotated[StoreId, Path(description="The trip's storeId; the token must be allowed it.")]
TripIdPath = Annotated[TripId, Path(description="The trip's shoppingTripId.")]
JobIdPath = Annotated[str, Path(pattern=job_id_pattern(), description="A job's id, as the answer to its POST named it: "
                                "`capture:<storeId>:<shoppingTripId>`, `cancel:…`, `refund:<refundRequestId>`, "
                                "`feedback:<storeId>:<shoppingTripId>:<paymentStatusTime>`.")]


class Accepted(BaseModel):
    """A job taken: its id, and whether this request created it (false: it was enqueued before, nothing new was written)."""

    jobId: str
    created: bool


class BatchAnswer(Accepted):
    """One job of a batch and its own answer: 202 created, 200 the same job was there already, 409 its id holds another job."""

    status: Literal[200, 202, 409] = Field(description="This job's answer, as `POST /v1/jobs` would give it.")
    problem: ProblemDetails | None = Field(None, description="For a 409: the `job-conflict` problem naming each differing field.")


class BatchAccepted(BaseModel):
    """The batch's jobs in the order sent, each with its own answer."""

    jobs: list[BatchAnswer]


class Deferral(BaseModel):
    """A time the job waited before, and why."""

    at: str | None = Field(description="When it was deferred (UTC, ISO 8601).")
    why: str


class JobView(BaseModel):
    """A job: its state, attempts and outcome. Times are UTC, ISO 8601 (`2026-11-27T13:00:00Z`)."""

    jobId: str = Field(description="The job's id, e.g. `capture:<storeId>:<shoppingTripId>`, as `POST /v1/jobs` answered it.")
    operation: str | None = Field(description="capture, cancel, refund or feedback.")
    state: Literal["queued", "waiting", "running", "deferred", "succeeded", "dead-lettered"]
    deferredUntil: str | None = Field(description="When a deferred job runs again.")
    why: str | None = Field(description="Why a deferred job waits, a waiting refund's capture, or a dead one's dead-letter reason.")
    deadLetter: bool | None = Field(description="For a dead-lettered job: whether its dead-letter entry is still there.")
    attempts: int = Field(description="Calls to the payment API so far.")
    replays: int = Field(description="Times an operator replayed it from the dead letters.")
    lastOutcome: str | None = Field(description="The latest call's result, e.g. `HTTP 200` or `HTTP 503 (Retry-After 30)`.")
    result: dict[str, Any] | None = Field(description="A success's result, e.g. a refund's `reconciliationId`; a capture's names its report.")
    reportJobId: str | None = Field(description="A settled capture's payment-status report job.")
    enqueuedAt: str | None
    firstAttemptAt: str | None
    lastAttemptAt: str | None
    updatedAt: str | None
    request: dict[str, Any] | None = Field(description="The job's wire fields, amounts as exact strings; a report's `paymentStatusTime` as a "
                                                       "time (UTC, ISO 8601) like every time payq shows, though the API is sent epoch seconds.")
    waitingFor: str | None = Field(description="A waiting refund's capture job.")
    deferrals: list[Deferral] = Field(description="Why the job waited before, oldest first (the latest 20).")


class TripDeadLetterNote(BaseModel):
    """Why one of a trip's jobs is dead-lettered."""

    reason: str
    error: str


class TripJob(BaseModel):
    """One of a trip's jobs, in short."""

    jobId: str
    state: str
    amount: str | None = Field(description="The job's amount, an exact string in the trip's currency.")
    attempts: int
    lastOutcome: str | None
    why: str | None
    reconciliationId: str | None = Field(description="A succeeded refund's reconciliationId.")
    deadLetter: TripDeadLetterNote | None


class TripDeadLetter(BaseModel):
    """A trip's job that will not succeed without an operator."""

    jobId: str
    operation: str
    reason: str = Field(description="The dead-letter reason, e.g. `permanent`, `retries-exhausted`, `capture-failed`.")
    error: str = Field(description="The failure, as a person reads it.")
    status: int | None = Field(description="The payment API's HTTP status, where there was one.")
    attempts: int
    deadAt: str | None = Field(description="When it was dead-lettered (UTC, ISO 8601).")
    replays: int


class TripView(BaseModel):
    """A trip: its jobs and what is captured, refunded and refundable; amounts are exact strings in the capture's currency."""

    storeId: str
    shoppingTripId: str
    currency: str | None
    capture: TripJob | None
    cancel: TripJob | None
    refunds: list[TripJob]
    report: TripJob | None
    captured: str
    refunded: str
    refunding: str = Field(description="What refunds on their way (queued, waiting for the capture, retrying) will return.")
    refundable: str | None = Field(description="What is left to refund: the captured amount less every refund not dead-lettered.")
    capturedAt: str | None
    deadLetters: list[TripDeadLetter]


REF = "#/components/schemas/{model}"


def component_schemas() -> dict[str, Any]:
    """Named schemas for what the routes read themselves (``JobRequest``, ``JobBatch`` and the models in them), as OpenAPI components."""
    shapes: dict[str, Any] = {"JobRequest": JobRequest, "JobBatch": JobBatch, "ProblemDetails": ProblemDetails}
    components: dict[str, Any] = {}
    for name, shape in shapes.items():
        schema = TypeAdapter(shape).json_schema(ref_template=REF)
        components.update(schema.pop("$defs", {}))
        components[name] = schema
    return components


def request_body(component: str, description: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON body itself: the body is the named ``component``."""
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": {"$ref": REF.format(model=component)}}}}}


_PROBLEM = {"$ref": REF.format(model="ProblemDetails")}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before sending the same request again.", "schema": {"type": "integer"}}}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": '`Bearer realm="payq"`, with `error="invalid_token"` for a token payq does not know.',
                               "schema": {"type": "string"}}},
    503: RETRY_AFTER,
}


def problems(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses`` entries for problem answers: each status with its description and headers, and any other refusal as ``default``."""
    entries: dict[int | str, dict[str, Any]] = {}
    for status, text in described.items():
        entries[status] = {"description": text, "content": {PROBLEM_JSON: {"schema": _PROBLEM}}}
        if status in _HEADERS:
            entries[status]["headers"] = _HEADERS[status]
    entries["default"] = {"description": "Any other refusal (404 for an unknown route, 405, 500), as a problem.",
                          "content": {PROBLEM_JSON: {"schema": _PROBLEM}}}
    return entries
