"""The Celery tasks, one per row of the table of operations, and how a job's ending becomes a Celery state.

Their kwargs are the wire fields, so Flower shows storeId and shoppingTripId.
The endings of :func:`workers.execution.execute` become: a result (SUCCESS),
``Retry`` without a new message (RETRY: the job already waits in payq's
deferred set), ``DeadLettered`` (FAILURE, declared in ``throws``: an expected
outcome, logged without a traceback) and ``Ignore`` (a delivery with nothing to do).
A message sent around payq's producer (Celery's own ``send_task``) is enqueued
by its worker as the job it is (:mod:`tasks.jobs.admission`) and succeeds with
``{"enqueuedAs": <job id>, "created": ...}``; that job runs under its own id.
A delivery that could not go on (Redis away past its patience, or the worker
shutting down while it waited to work) hands its message back with ``Reject``:
one line of payq's, Celery's own report of it dropped (:mod:`workers.degraded`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import task_retry

from config.celery import STEPS_PATIENCE
from payapi.errors import DeadLettered, Deferred
from payapi.operations import OPERATIONS, Operation, OperationSpec
from tasks import tracing
from tasks.jobs.admission import Admitted
from tasks.jobs.decide import DeadLetterJob, Requeue, Skip, Succeed, on_error
from tasks.jobs.deferral import Deferral
from tasks.states import JobState
from workers.execution import Ending, Job, dead_letter, execute
from workers.runtime import Runtime, RuntimeHolder

log = logging.getLogger("payq.jobs")


def run(task: Task, holder: RuntimeHolder, operation: Operation, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Execute one delivery and translate its ending into Celery's task states."""
    job = Job(
        operation, task.request.id, kwargs, task.request.hostname or "unknown",
        # kombu keeps a message's tag when it puts the same message back; a copy published again has a new one
        (task.request.properties or {}).get("delivery_tag") or "",
    )
    rt = holder.get()
    if not rt.degraded.wait_to_work():  # the worker takes no work now (workers/degraded.py): the job waits before it begins
        log.info("%s %s: the worker is shutting down; message given back", operation.value, job.job_id)
        raise Reject("the worker is shutting down", requeue=True)
    # the delivery's span, in the job's trace (its message's traceparent, fixed at enqueue); the ending is told after it closed
    parent = tracing.valid_traceparent(task.request.get(tracing.HEADER))
    with tracing.span(f"payq.task {operation.value}", tracing.Kind.CONSUMER, parent,
                      tracing.job_attributes(job.job_id, operation.value, kwargs)) as current:
        ending = _deliver(rt, job)
        tracing.set_attributes(current, {tracing.ENDING: ending_name(ending)})
    if isinstance(ending, Succeed | Admitted):  # an admitted message's result names the job it became
        return ending.result
    if isinstance(ending, Deferral):
        deferred = Deferred(ending.cause.value, ending.until, ending.describe())
        # publishes nothing (the job waits in the deferred set already) and shows RETRY in Flower
        raise Retry(message=deferred.description, exc=deferred, when=ending.until)
    if isinstance(ending, DeadLetterJob):
        raise DeadLettered(ending.reason.value, ending.failure.describe(), ending.failure.status)
    assert isinstance(ending, Skip)
    if not ending.lost:  # a lost lease was logged where it was found
        log.info("%s %s: delivered again %s; nothing to do", operation.value, job.job_id, _SKIPPED[ending.verdict.value])
    raise Ignore()


def _deliver(rt: Runtime, job: Job) -> Ending:
    """The delivery's ending: :func:`execute`'s, or the dead letter of a delivery whose handling raised (``Reject`` if it asks a requeue)."""
    patience = rt.patience(STEPS_PATIENCE)
    try:
        return execute(rt, job, patience)
    except Exception as exc:
        action = on_error(exc)
        if isinstance(action, Requeue):
            log.warning("%s %s: message requeued: %s", job.operation.value, job.job_id, action.cause)
            raise Reject(action.cause, requeue=True) from None
        log.exception("%s %s: unexpected error", job.operation.value, job.job_id)
        return dead_letter(rt, patience.extended(STEPS_PATIENCE), job, action)


def ending_name(ending: Ending) -> str:
    """How a delivery's span names its ending: the job's state after it, or why the delivery had nothing to do."""
    if isinstance(ending, Succeed):
        return JobState.SUCCEEDED.value
    if isinstance(ending, Deferral):
        return JobState.DEFERRED.value
    if isinstance(ending, DeadLetterJob):
        return JobState.DEAD.value
    if isinstance(ending, Admitted):
        return "admitted"  # a message sent around payq's producer, enqueued as the job it names
    return f"skipped-{ending.verdict.value}"


_SKIPPED = {
    "held": "while another worker holds it",
    "succeeded": "but already succeeded",
    "dead": "but already dead-lettered",
    "deferred": "but already deferred",
    "waiting": "but it waits for its trip's capture",
    "differs": "with kwargs that are not the job's, and again as recorded",
}


def _drop_deferred_traceback(reason: object = None, **_: object) -> None:
    """Let a deferral's ``Retry`` go without its traceback, so the worker frees it at once.

    Celery keeps the raised ``Retry`` in locals of the frame that caught it,
    and the tracebacks of the ``Retry`` and of the ``Deferred`` inside it lead
    back to that frame (the latter through ``f_back``): a reference cycle that
    only the cyclic GC frees. Each cycle also holds billiard's copy of the
    traceback (every frame's code positions, ~200 KB), and the copying itself
    triggers so many young collections that the cycle is soon in the oldest
    generation, which is collected rarely: 1,000 deferrals grew a worker by
    ~60 MB. A deferral is control flow, not an error; its traceback says nothing.
    """
    if isinstance(reason, Retry) and isinstance(reason.exc, Deferred):
        reason.__traceback__ = None
        reason.exc.__traceback__ = None


def _define(app: Celery, holder: RuntimeHolder, spec: OperationSpec) -> Task:
    operation = spec.operation

    def perform(self: Task, **kwargs: Any) -> dict[str, Any]:
        return run(self, holder, operation, kwargs)

    perform.__doc__ = spec.summary
    perform.__name__ = perform.__qualname__ = spec.task.rpartition(".")[2]
    task: Task = app.task(name=spec.task, bind=True, throws=(DeadLettered,))(perform)
    return task


def register(app: Celery, holder: RuntimeHolder) -> dict[Operation, Task]:
    """Define the payment tasks on ``app``: one per operation, named and routed by the table."""
    task_retry.connect(_drop_deferred_traceback, weak=False, dispatch_uid="payq-drop-deferred-traceback")
    return {op: _define(app, holder, spec) for op, spec in OPERATIONS.items()}
