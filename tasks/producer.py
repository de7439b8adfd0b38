"""The producer API: what store backends call to hand payq a job.

Every call validates at the edge (an invalid job raises
:class:`~payapi.errors.InvalidRequest` naming each field, and nothing is
written), derives the job id from the operation's natural key, and publishes
atomically with its record, so enqueueing the same job twice returns the same
id and publishes once.

    from tasks.producer import Producer
    producer = Producer(Settings())
    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount={"amount": "12.34", "code": "USD"})
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis

from config.settings import Settings, load_settings
from payapi import wire
from payapi.errors import InvalidRequest
from payapi.models import parse_request, trip_id_problems
from payapi.operations import lookup, with_defaults
from tasks import tracing
from tasks.redis.connection import connect, replicas, with_retry
from tasks.store.records import Enqueued, JobStore, NewJob, conflicts


def prepare(operation: str, fields: dict[str, Any], now: float | None = None) -> NewJob:
    """Validate ``fields`` (wire names) for ``operation`` and fix the job's id and idempotency key.

    A refund without ``refundRequestId`` gets a fresh UUID here, once; every
    retry and replay reuses it. A feedback without ``paymentStatusTime`` is
    stamped with the current time (the table of operations says which fields).
    """
    try:
        spec = lookup(operation)
    except InvalidRequest as exc:
        # the operation decides the other fields' rules; the trip's ids have the same ones in every operation: named now too
        raise InvalidRequest([*exc.problems, *trip_id_problems(fields)]) from None
    model = parse_request(spec.request, with_defaults(spec, fields, now))
    kwargs = wire.to_kwargs(model)
    return NewJob(spec.operation, spec.job_id(kwargs), kwargs)


def enqueue_attributes(jobs: Sequence[NewJob]) -> dict[str, Any]:
    """What an enqueue span says: how many jobs, and the one job's id, operation, store and trip when there is one."""
    if len(jobs) == 1:
        return {**tracing.job_attributes(jobs[0].job_id, jobs[0].operation.value, jobs[0].kwargs), tracing.JOB_COUNT: 1}
    return {tracing.JOB_COUNT: len(jobs)}


class Producer:
    """Enqueues jobs onto payq's Redis; safe to share between threads."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self._settings = settings
        self._redis = client if client is not None else connect(settings)
        self._jobs = JobStore(self._redis, int(settings.job_retention_days * 86400), int(settings.trip_books_retention_days * 86400))
        self._replicas = replicas(settings)

    def enqueue(self, operation: str, fields: dict[str, Any]) -> str:
        """Validate and publish one job; returns its id (the existing id if the same job was enqueued before).

        Raises :class:`~payapi.errors.JobConflict` if the id holds a different
        job (another amount, say), naming each field with the stored and the sent value.
        """
        return self.enqueue_job(prepare(operation, fields))

    def enqueue_job(self, job: NewJob) -> str:
        """Publish one prepared job; returns its id. :class:`~payapi.errors.JobConflict` as :meth:`enqueue`."""
        conflict = conflicts(self.submit([job]), in_batch=False)
        if conflict is not None:
            raise conflict
        return job.job_id

    def publish(self, jobs: Iterable[NewJob]) -> list[str]:
        """Publish prepared jobs; returns their ids in order.

        As :meth:`submit`, and then raises :class:`~payapi.errors.JobConflict`
        naming each job (by its ``index``) whose id holds a different job: those
        were refused, every other job was enqueued.
        """
        results = self.submit(jobs)
        conflict = conflicts(results, in_batch=True)
        if conflict is not None:
            raise conflict
        return [result.job.job_id for result in results]

    def submit(self, jobs: Iterable[NewJob]) -> list[Enqueued]:
        """Publish prepared jobs, all or none as far as the trips' rules go; what became of each, in order.

        Raises :class:`~tasks.jobs.books.TripRuleViolation` (an ``InvalidRequest``)
        naming each job that breaks its trip's rules, with nothing written;
        :class:`~payapi.errors.BrokerUnavailable` if Redis cannot be reached
        within ``redis_retry_seconds``; :class:`~payapi.errors.NotReplicated`
        if fewer than ``PAYQ_REDIS_MIN_REPLICAS`` replicas confirmed the jobs
        in time (they may still run: send them again). A job whose id holds a
        different job is refused alone (:attr:`Enqueued.differences`), the
        others enqueued. Publishing is idempotent, so a retry after a fault
        part-way never publishes a job twice.
        """
        batch = list(jobs)
        if not batch:
            return []

        def enqueue_confirmed() -> list[Enqueued]:
            done = self._jobs.enqueue(batch)
            self._replicas.confirm(self._redis)
            return done

        with tracing.span("payq.enqueue", tracing.Kind.PRODUCER, attributes=enqueue_attributes(batch)):
            return with_retry(self._settings, enqueue_confirmed)

    def check(self, jobs: Iterable[NewJob]) -> None:
        """Raise :class:`~tasks.jobs.books.TripRuleViolation` if ``jobs``, in this order, would break a trip's rules; writes nothing."""
        batch = list(jobs)
        if batch:
            with_retry(self._settings, lambda: self._jobs.check(batch))

    def enqueue_capture(self, *, storeId: str, shoppingTripId: str, amount: dict[str, Any]) -> str:
        """Capture ``amount`` (``{"amount": Decimal|str, "code": "USD"}``) for a trip; its payment-status report follows."""
        return self.enqueue("capture", {"storeId": storeId, "shoppingTripId": shoppingTripId, "amount": amount})

    def enqueue_cancel(self, *, storeId: str, shoppingTripId: str) -> str:
        """Cancel an empty cart's pre-authorisation."""
        return self.enqueue("cancel", {"storeId": storeId, "shoppingTripId": shoppingTripId})

    def enqueue_refund(
        self,
        *,
        storeId: str,
        shoppingTripId: str,
        amount: dict[str, Any],
        refundReasonCode: str,
        refundRequestId: str | None = None,
    ) -> str:
        """Refund ``amount`` of a trip; ``refundRequestId`` is made here when not given and kept for every retry."""
        return self.enqueue("refund", {
            "storeId": storeId, "shoppingTripId": shoppingTripId, "amount": amount,
            "refundReasonCode": refundReasonCode, "refundRequestId": refundRequestId,
        })

    def enqueue_feedback(
        self,
        *,
        storeId: str,
        shoppingTripId: str,
        totalAmount: dict[str, Any],
        settledAmount: dict[str, Any],
        paymentStatusTime: int | None = None,
    ) -> str:
        """Report a trip's payment status (``paymentStatusTime`` defaults to now, epoch seconds)."""
        return self.enqueue("feedback", {
            "storeId": storeId, "shoppingTripId": shoppingTripId, "totalAmount": totalAmount,
            "settledAmount": settledAmount, "paymentStatusTime": paymentStatusTime,
        })


def _default_producer() -> Producer:
    return Producer(load_settings())


def enqueue_capture(*, storeId: str, shoppingTripId: str, amount: dict[str, Any], producer: Producer | None = None) -> str:
    """Module-level shortcut for :meth:`Producer.enqueue_capture` with settings from the environment."""
    return (producer or _default_producer()).enqueue_capture(storeId=storeId, shoppingTripId=shoppingTripId, amount=amount)


def enqueue_cancel(*, storeId: str, shoppingTripId: str, producer: Producer | None = None) -> str:
    """Module-level shortcut for :meth:`Producer.enqueue_cancel`."""
    return (producer or _default_producer()).enqueue_cancel(storeId=storeId, shoppingTripId=shoppingTripId)


def enqueue_refund(
    *,
    storeId: str,
    shoppingTripId: str,
    amount: dict[str, Any],
    refundReasonCode: str,
    refundRequestId: str | None = None,
    producer: Producer | None = None,
) -> str:
    """Module-level shortcut for :meth:`Producer.enqueue_refund`."""
    return (producer or _default_producer()).enqueue_refund(
        storeId=storeId, shoppingTripId=shoppingTripId, amount=amount,
        refundReasonCode=refundReasonCode, refundRequestId=refundRequestId,
    )


def enqueue_feedback(
    *,
    storeId: str,
    shoppingTripId: str,
    totalAmount: dict[str, Any],
    settledAmount: dict[str, Any],
    paymentStatusTime: int | None = None,
    producer: Producer | None = None,
) -> str:
    """Module-level shortcut for :meth:`Producer.enqueue_feedback`."""
    return (producer or _default_producer()).enqueue_feedback(
        storeId=storeId, shoppingTripId=shoppingTripId, totalAmount=totalAmount,
        settledAmount=settledAmount, paymentStatusTime=paymentStatusTime,
    )
