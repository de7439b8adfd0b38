"""What ``/openapi.json`` says of the intake's bodies: models for the description, never used to parse.

The routes read the raw bytes and validate with the payment API's own models
(:mod:`payq.serve.bodies`), so an amount is never a float on the way; these
models give the same shapes to the OpenAPI document. A request body's schema
is inlined (no ``$ref``), since it travels in ``openapi_extra``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from payapi.models import CancelRequest, CaptureRequest, FeedbackRequest, RefundRequest
from payq.serve.bodies import BATCH_MAX_JOBS
from payq.serve.problems import PROBLEM_JSON, ProblemBody
from tasks.deadletters import DeadLetter


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

    jobs: list[JobRequest] = Field(min_length=1, max_length=BATCH_MAX_JOBS)


class Accepted(BaseModel):
    """A job taken: its id, and whether this request created it (false: it was enqueued before, nothing new was written)."""

    jobId: str
    created: bool


class BatchAccepted(BaseModel):
    """The batch's jobs in the order sent."""

    jobs: list[Accepted]


class JobView(BaseModel):  # type: ignore[no-redef]  # pydantic's mypy plugin trips over a field named kwargs
    """A job as `payq job ID --json` prints it; times are UTC ISO 8601."""

    model_config = ConfigDict(extra="allow")

    id: str
    operation: str | None
    state: str = Field(description="queued, waiting, running, deferred, succeeded or dead-lettered")
    deferred_until: str | None
    why: str | None = Field(description="Why a deferred job waits, a waiting refund's capture, or a dead one's dead-letter reason.")
    dead_letter: bool | None = Field(description="For a dead-lettered job: whether its dead-letter entry is still there.")
    attempts: int
    replays: int
    last_outcome: str | None
    result: dict[str, Any] | None = Field(description="A success's result, e.g. a refund's reconciliationId; a capture's names its report.")
    report_job_id: str | None
    worker: str | None
    enqueued_at: str | None
    first_attempt_at: str | None
    last_attempt_at: str | None
    updated_at: str | None
    kwargs: dict[str, Any] | None = Field(description="The job's wire fields, amounts as exact strings.")
    waiting_for: str | None
    deferrals: list[dict[str, Any]] = Field(description="Why the job waited before, oldest first (the latest 20): {at, why}.")


class TripJob(BaseModel):
    """One of a trip's jobs, in short."""

    id: str
    state: str
    amount: str | None
    attempts: int
    last_outcome: str | None
    why: str | None
    reconciliationId: str | None
    dead_letter: dict[str, Any] | None


class TripView(BaseModel):
    """A trip as `payq trip STORE_ID TRIP_ID --json` prints it; amounts are exact strings in the capture's currency."""

    storeId: str
    shoppingTripId: str
    currency: str | None
    capture: TripJob | None
    cancel: TripJob | None
    refunds: list[TripJob]
    report: TripJob | None
    captured: str
    refunded: str
    refunding: str
    refundable: str | None
    captured_at: str | None
    dead_letters: list[DeadLetter]


def inline_schema(shape: Any) -> dict[str, Any]:
    """The JSON schema of ``shape`` (a model or a type) with every ``$ref`` replaced by what it names."""
    schema = TypeAdapter(shape).json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve({**defs[ref.rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}})
            # a discriminator's mapping names $defs that are gone; each job's `operation` constant says it all
            return {k: resolve(v) for k, v in node.items() if not (k == "discriminator" and isinstance(v, dict))}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def request_body(shape: Any, description: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON body itself."""
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": inline_schema(shape)}}}}


_PROBLEM_SCHEMA = inline_schema(ProblemBody)


def problems(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses`` entries for problem answers: each status with its description, and any other refusal as ``default``."""
    entries: dict[int | str, dict[str, Any]] = {
        status: {"description": text, "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}} for status, text in described.items()
    }
    entries["default"] = {"description": "Any other refusal (500), as a problem.", "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}}
    return entries
