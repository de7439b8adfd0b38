"""The store backends' HTTP API: ``/v1/jobs``, ``/v1/jobs/batch``, ``/v1/jobs/{jobId}``, ``/v1/trips/{storeId}/{shoppingTripId}``.

Every route asks for ``Authorization: Bearer <token>`` (:mod:`payq.serve.access`)
and touches only the stores the token may use. A POST reads its raw body
(bounded: :mod:`payq.serve.bodies`), validates every job before anything
is written, and enqueues with the producer's atomic script, so a refused
request writes nothing. Refusals are RFC 9457 problems
(:mod:`payq.serve.problems`); docs/store-backends.md, "Errors", lists them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import quote

import redis
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from payapi.errors import BrokerUnavailable, NotReplicated, RedisFull

# the module, not its names: app.py imports this module while it is being built
from payq.serve.access import store_named_by, stores_of
from payq.serve.bodies import BATCH_BODY_LIMIT, BATCH_MAX_JOBS, JOB_BODY_LIMIT, batch, one_job, read_body
from payq.serve.jobs import IntakeJobs
from payq.serve.problems import (
    Problem,
    conflict_errors,
    forbidden,
    internal,
    job_conflict,
    not_found,
    store_backlog,
    trip_rules,
    unauthorized,
    unavailable,
)
from payq.serve.schemas import (
    Accepted,
    BatchAccepted,
    JobIdPath,
    JobView,
    StoreIdPath,
    TripIdPath,
    TripView,
    problems,
    request_body,
)
from payq.serve.shared import intake_jobs_of, settings_of
from payq.views import public_job, public_trip
from tasks import tracing
from tasks.jobs.books import TripRuleViolation
from tasks.redis.connection import FULL
from tasks.store.backlog import over_cap, retry_after
from tasks.store.records import NewJob

log = logging.getLogger(__name__)


class _ProblemRoute(APIRoute):
    """A route that answers a raised :class:`Problem` as problem JSON, and any fault of its own as a 500 problem.

    With tracing on, each request is FastAPI's own server span (``create_app``
    turns it on for ``/v1`` only), a child of the store backend's
    ``traceparent``, and the jobs a POST enqueues join its trace. With tracing
    off, the store backend's ``traceparent`` is only carried: the jobs keep it,
    for workers that trace.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Problem as problem:
                return problem.response()
            except (HTTPException, RequestValidationError, ClientDisconnect):
                raise
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                return internal().response()

        async def handle(request: Request) -> Response:
            if tracing.enabled():
                return await answer(request)
            with tracing.carried(tracing.valid_traceparent(request.headers.get(tracing.HEADER))):
                return await answer(request)

        return handle


router = APIRouter(prefix="/v1", tags=["intake"], route_class=_ProblemRoute)
_bearer = HTTPBearer(
    auto_error=False, scheme_name="storeToken",
    description="A store backend's token, made by `payq token new --store S`; it may use only the storeIds it was made for.",
)


async def token_stores(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> frozenset[str]:
    """The storeIds the request's bearer token may use; 401 without a token or with one payq does not know."""
    if credentials is None:
        raise unauthorized("send Authorization: Bearer <token> (payq token new makes one)", invalid_token=False)
    stores = stores_of(credentials.credentials, settings_of(request).intake_tokens)
    if stores is None:
        # never echo the token: it would land in a client's logs beside the refusal
        raise unauthorized("the bearer token is not one payq knows (mistyped, or removed from PAYQ_INTAKE_TOKENS)", invalid_token=True)
    return stores


TokenStores = Annotated[frozenset[str], Depends(token_stores)]


def _jobs(request: Request) -> IntakeJobs:
    return intake_jobs_of(request)


def _check_stores(jobs: Sequence[NewJob], stores: frozenset[str], *, in_batch: bool) -> None:
    """403 naming every job whose storeId the token may not use."""
    refused = [(i, str(job.kwargs["storeId"])) for i, job in enumerate(jobs) if job.kwargs["storeId"] not in stores]
    if refused:
        errors = [{**({"index": i} if in_batch else {}), "field": "storeId", "rule": f"this token may not use store {store!r}"}
                  for i, store in refused]
        raise forbidden("the token may not use the store of " + ("these jobs" if in_batch else "this job") + "; nothing was enqueued", errors)


async def _check_backlogs(request: Request, jobs: Sequence[NewJob], *, in_batch: bool) -> None:
    """429 with Retry-After if the jobs would take a store past ``PAYQ_STORE_BACKLOG_CAP`` open jobs (checked before anything is written)."""
    cap = settings_of(request).store_backlog_cap
    if cap is None:
        return
    new = Counter(str(job.kwargs["storeId"]) for job in jobs)
    open_jobs = await _jobs(request).open_jobs(list(new))
    limits = settings_of(request).rate_limits
    for store, count in new.items():
        if over_cap(open_jobs[store], count, cap):
            wait = retry_after(open_jobs[store], cap, max(limits.values()) if limits else None)
            raise store_backlog(store, open_jobs[store], count, cap, wait, in_batch)


@contextmanager
def _redis_refusals(*, in_batch: bool = False) -> Iterator[None]:
    """A trip's rules as 409; Redis unreachable, read-only or full (naming it) as 503 (nothing was written); too few replicas as 503."""
    try:
        yield
    except TripRuleViolation as exc:
        raise trip_rules(exc, in_batch) from None
    except NotReplicated as exc:
        log.warning("answering 503: %s", exc)
        raise unavailable(
            "Redis's replicas did not confirm the jobs in time (PAYQ_REDIS_MIN_REPLICAS): they are not yet safe from a failover and"
            " may or may not run. Send them again after Retry-After seconds: the same jobs, never twice.",
        ) from None
    except (BrokerUnavailable, redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("answering 503: %s", exc)
        raise unavailable("Redis cannot be reached; nothing was written. Try again after Retry-After seconds.") from None
    except (RedisFull, redis.OutOfMemoryError) as exc:
        log.warning("answering 503: Redis is full: %s", exc)
        raise unavailable(FULL + ".") from None
    except redis.ResponseError as exc:
        # a replica (READONLY) refuses writes: the same as unreachable for the client
        if not str(exc).startswith("READONLY") and not isinstance(exc, redis.ReadOnlyError):
            raise
        log.warning("answering 503: Redis refused the write: %s", exc)
        raise unavailable("Redis refuses writes for now; nothing was written. Try again after Retry-After seconds.") from None


_POST_PROBLEMS = {
    400: "The body is not JSON (or not UTF-8).",
    401: "No bearer token, or one payq does not know (`WWW-Authenticate: Bearer`).",
    403: "A job's storeId is not one the token may use; nothing was enqueued.",
    409: "A trip's rule refuses a job (`urn:payq:problem:trip-rule`; `rule`: over-refund, refund-currency, refund-window, "
         "capture-after-cancel, cancel-after-capture; nothing was enqueued), or the job's id holds a job with other fields "
         "(`urn:payq:problem:job-conflict`; each error names the field with its `stored` and `sent` value; nothing was changed).",
    413: "The body is too large.",
    422: "A job breaks a rule; `errors` names every field and rule; nothing was enqueued.",
    429: "The store already has `PAYQ_STORE_BACKLOG_CAP` jobs open (`urn:payq:problem:store-backlog`); nothing was enqueued. Send the"
         " same jobs again after `Retry-After` seconds. Only that store is refused.",
    503: "Redis cannot be reached (nothing was written), or its replicas did not confirm the jobs in time (`PAYQ_REDIS_MIN_REPLICAS`: they"
         " may still run). Send them again after `Retry-After` seconds: enqueueing is idempotent.",
}


@router.post(
    "/jobs", status_code=202, response_model=Accepted, summary="Enqueue one job", operation_id="enqueueJob",
    responses={202: {"description": "The job was enqueued.",
                     "headers": {"Location": {"description": "The job's URL, `/v1/jobs/{jobId}`.", "schema": {"type": "string"}}}},
               200: {"model": Accepted, "description": "The same job was enqueued before: its id, `created: false`; nothing new was written."},
               **problems({**_POST_PROBLEMS, 413: f"The body is over {JOB_BODY_LIMIT} bytes."})},
    openapi_extra=request_body("JobRequest", "One job: the wire fields plus `operation`, as a line of `payq enqueue --file`. "
                                           "Amounts as JSON numbers (read exactly, never as float) or strings."),
)
async def post_job(request: Request, stores: TokenStores) -> Response:
    """Validate one job and enqueue it: 202 if this created it, 200 if it was enqueued before (the same job), 409 if its id holds another."""
    job = one_job(await read_body(request, JOB_BODY_LIMIT))
    _check_stores([job], stores, in_batch=False)
    with _redis_refusals():
        await _check_backlogs(request, [job], in_batch=False)
        done = (await _jobs(request).enqueue([job]))[0]
    if done.conflict:
        raise job_conflict(conflict_errors(done.differences, stores, batch=False))
    headers = {"Location": f"{router.prefix}/jobs/{quote(job.job_id, safe=':')}"} if done.created else None
    return JSONResponse({"jobId": job.job_id, "created": done.created}, status_code=202 if done.created else 200, headers=headers)


@router.post(
    "/jobs/batch", status_code=202, response_model=BatchAccepted, summary="Enqueue up to 1,000 jobs, each with its own answer",
    operation_id="enqueueJobBatch",
    responses={202: {"description": "At least one job was new. Each job's `status` says what became of it: 202 enqueued, 200 there "
                                    "already, 409 refused because its id holds a job with other fields (its `problem` names them)."},
               200: {"model": BatchAccepted, "description": "Every job was enqueued before; nothing new was written."},
               **problems({**_POST_PROBLEMS, 413: f"The body is over {BATCH_BODY_LIMIT} bytes.",
                           409: _POST_PROBLEMS[409] + " A batch answers 409 only when no job was new; `jobs` then gives each job's answer.",
                           422: f"A job breaks a rule (each error names its `index`), or `jobs` does not hold 1 to {BATCH_MAX_JOBS} "
                                "jobs; nothing was enqueued."})},
    openapi_extra=request_body("JobBatch", '`{"jobs": [...]}`: up to 1,000 jobs, each as for POST /v1/jobs. Every job is validated '
                                         "and its store and its trip's rules checked first: one invalid job, or one that breaks its trip's "
                                         "rules, and nothing is enqueued. A job whose id holds a job with other fields is refused on its own "
                                         "(its `status` 409); the others are enqueued."),
)
async def post_batch(request: Request, stores: TokenStores) -> Response:
    """Validate every job, check every job's store, then enqueue them: 202 if any was new, 409 if none was and one conflicted, else 200.

    Each job gets its own answer: a job whose id holds a different job is
    refused on its own (``status`` 409 and its ``problem``), the others enqueued.
    """
    raw = await read_body(request, BATCH_BODY_LIMIT)
    # a thousand jobs take a while to validate: off the event loop, so other requests are answered meanwhile
    jobs = await run_in_threadpool(batch, raw)
    _check_stores(jobs, stores, in_batch=True)
    with _redis_refusals(in_batch=True):
        await _check_backlogs(request, jobs, in_batch=True)
        done = await _jobs(request).enqueue(jobs)
    answers, refused = [], []
    for result in done:
        answer: dict[str, Any] = {"jobId": result.job.job_id, "created": result.created, "status": 202 if result.created else 200}
        if result.conflict:
            errors = conflict_errors(result.differences, stores, batch=True)
            refused += errors
            answer.update(status=409, problem=job_conflict([{k: v for k, v in e.items() if k != "index"} for e in errors]).body())
        answers.append(answer)
    if refused and not any(result.created for result in done):
        raise job_conflict(refused, answers)
    return JSONResponse({"jobs": answers}, status_code=202 if any(result.created for result in done) else 200)


class _JobIdConvertor(StringConvertor):
    """A job id in the path: any segment but ``batch``, so ``GET /v1/jobs/batch`` is the batch route's 405, not a job named "batch"."""

    regex = "(?!batch$)[^/]+"


register_url_convertor("job_id", _JobIdConvertor())

_GET_PROBLEMS = {
    401: _POST_PROBLEMS[401],
    403: "The job's id or the path names a store the token may not use.",
    404: "No such job or trip for the token's stores (never enqueued, or past its retention).",
    422: "A path parameter breaks its rule (the same as the field's in a job); `errors` names it.",
    503: "Redis cannot be reached. Try again after `Retry-After` seconds.",
}


@router.get(
    "/jobs/{jobId:job_id}", summary="A job's state, attempts and outcome", operation_id="getJob",
    responses={200: {"model": JobView, "description": "The job."}, **problems(_GET_PROBLEMS)},
)
async def get_job(jobId: JobIdPath, request: Request, stores: TokenStores) -> Response:
    """The job's view; 403 if its id names another store, 404 if there is none among the token's stores."""
    named = store_named_by(jobId)
    if named is not None and named not in stores:
        raise forbidden(f"the token may not use store {named!r}")
    with _redis_refusals():
        view = await _jobs(request).job(jobId)
    # a refund's id does not name its store: one of another store is answered as unknown, revealing nothing
    if view is None or (view["request"] or {}).get("storeId") not in stores:
        raise not_found(f"payq has no job {jobId!r} for this token's stores (never enqueued, or past its retention)")
    return JSONResponse(public_job(view))


@router.get(
    "/trips/{storeId}/{shoppingTripId}", summary="A trip's jobs and what is captured, refunded and refundable", operation_id="getTrip",
    responses={200: {"model": TripView, "description": "The trip."}, **problems(_GET_PROBLEMS)},
)
async def get_trip(storeId: StoreIdPath, shoppingTripId: TripIdPath, request: Request, stores: TokenStores) -> Response:
    """The trip's view; 403 for a store the token may not use, 404 if payq has no jobs for the trip."""
    if storeId not in stores:
        raise forbidden(f"the token may not use store {storeId!r}")
    with _redis_refusals():
        view = await _jobs(request).trip(storeId, shoppingTripId)
    if view is None:
        raise not_found(f"payq has no jobs for trip {storeId}/{shoppingTripId} (or they are past their retention)")
    return JSONResponse(public_trip(view))
