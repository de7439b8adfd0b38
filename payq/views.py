"""What payq shows of a job and of a trip, built from their records: JSON-ready, times as UTC ISO 8601 (the CLI and `payq serve`).

:func:`read_trip` reads a trip's records from the stores the way ``payq trip``
and the console both do; the views themselves only shape what was read.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from payapi.operations import OPERATIONS, Operation
from tasks.jobs.books import cents, money
from tasks.jobs.deferral import Deferral, failure_from
from tasks.notify.events import public_result
from tasks.redis.memory import Memory
from tasks.states import JobState
from tasks.stats import Stats
from tasks.store.deadletters import DeadLetter, DeadLetterStore
from tasks.store.records import JobStore


def iso(epoch: float | None) -> str | None:
    """``epoch`` as ``2026-11-27T13:00:00Z``, or None."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# One public shape for everything a person or a program reads (the CLI's --json, every HTTP answer):
# camelCase keys, times as UTC ISO 8601. A key naming a time ends in At or Until (or is `at`, or the
# wire's paymentStatusTime); its number of epoch seconds is written as a time.
_TIME_KEY = re.compile(r"(?:^at|At|Until|Time)$")


def camel(name: str) -> str:
    """``first_attempt_at`` as ``firstAttemptAt``; a camelCase name as it is."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def public(value: Any) -> Any:
    """``value`` (JSON-ready) in the public shape: every key camelCase, every time key's epoch seconds as UTC ISO 8601."""
    if isinstance(value, dict):
        shaped: dict[str, Any] = {}
        for key, inner in value.items():
            name = camel(str(key))
            is_number = isinstance(inner, int | float) and not isinstance(inner, bool)
            shaped[name] = iso(float(inner)) if is_number and _TIME_KEY.search(name) else public(inner)
        return shaped
    if isinstance(value, list | tuple):
        return [public(item) for item in value]
    return value


def job_view(
    job_id: str, record: dict[str, str], in_dead_letters: bool, deferrals: list[dict[str, Any]] | None = None,
    lease_until: float | None = None,
) -> dict[str, Any]:
    """What ``payq job --json`` shows for a job record, in the public shape.

    ``why`` says why a deferred job waits, or a dead one's dead-letter reason;
    ``lastOutcome`` is the latest call's result as a person reads it;
    ``request`` the job's wire fields (a report's ``paymentStatusTime`` as a
    time); ``deferrals`` (when given) lists why the job waited before, oldest
    first; a running job's ``holder`` is the worker process that holds it,
    until ``leaseUntil`` (when given) unless its heartbeat renews the lease.
    ``traceId`` is the job's OpenTelemetry trace, if it has one (operators only).
    """
    state = JobState(record.get("state", JobState.QUEUED))
    result = json.loads(record["result"]) if "result" in record else None
    failure = failure_from(json.loads(record["failure"])) if "failure" in record else None
    deferral = Deferral.from_json(record["defer"]) if state is JobState.DEFERRED and "defer" in record else None

    def when(name: str) -> str | None:
        return iso(float(record[name])) if name in record else None

    why = None
    if deferral is not None:
        why = deferral.describe()
    elif state is JobState.DEAD:
        why = record.get("reason")
    elif state is JobState.WAITING:
        why = f"waiting for capture {record.get('waiting_for')}"
    if state is JobState.SUCCEEDED:
        last_outcome: str | None = "HTTP 200"
    else:
        last_outcome = failure.describe() if failure is not None else None
    view: dict[str, Any] = {
        "jobId": job_id,
        "operation": record.get("op"),
        "state": "dead-lettered" if state is JobState.DEAD else state.value,
        "deferredUntil": when("deferred_until") if state is JobState.DEFERRED else None,
        "why": why,
        "deadLetter": in_dead_letters if state is JobState.DEAD else None,
        "attempts": int(record.get("attempts", 0)),
        "replays": int(record.get("replays", 0)),
        "lastOutcome": last_outcome,
        "result": public_result(result) if isinstance(result, dict) else result,
        "reportJobId": result.get("reportJobId") if isinstance(result, dict) else None,
        "worker": record.get("worker"),
        "enqueuedAt": when("enqueued_at"),
        "firstAttemptAt": when("first_attempt_at"),
        "lastAttemptAt": when("last_attempt_at"),
        "updatedAt": when("updated_at"),
        "request": public(json.loads(record["kwargs"])) if "kwargs" in record else None,
        "waitingFor": record.get("waiting_for") if state is JobState.WAITING else None,
        "holder": record.get("holder") if state is JobState.RUNNING else None,
        "leaseUntil": iso(lease_until) if lease_until is not None and state is JobState.RUNNING else None,
        "recoveries": int(record["recoveries"]) if "recoveries" in record else None,
        "recoveredFrom": record.get("recovered_from"),
        # the job's OpenTelemetry trace (docs/operating.md, "Tracing"): what to search the tracing backend for
        "traceId": record["traceparent"].split("-")[1] if record.get("traceparent", "").count("-") == 3 else None,
    }
    if deferrals is not None:
        view["deferrals"] = [
            {"at": iso(item.get("at")), "why": Deferral.from_json(json.dumps({k: v for k, v in item.items() if k != "at"})).describe()}
            for item in deferrals
        ]
    return view


def trip_job_ids(books: dict[str, str]) -> list[str]:
    """The ids of a trip's capture, cancel and refunds (dead-lettered ones too), from its books: what a trip's view reads."""
    return [books[k] for k in ("capture", "cancel") if k in books] + [k[2:] for k in books if k.startswith(("r:", "d:"))]


def report_job_id(books: dict[str, str], records: dict[str, dict[str, str]]) -> str | None:
    """The payment-status report a trip's capture chained, once the capture has succeeded (None before)."""
    capture = records.get(books.get("capture", ""), {})
    report = json.loads(capture["result"]).get("reportJobId") if "result" in capture else None
    return str(report) if report else None


def dead_letter_view(entry: DeadLetter) -> dict[str, Any]:
    """A dead letter as ``payq dlq list --json`` and ``dlq show --json`` print it: everything stored, in the public shape.

    ``request`` is the job's wire fields as it will be sent again (its
    idempotency key among them); ``history`` each earlier replay.
    """
    stored = entry.model_dump(mode="json")
    stored["request"] = stored.pop("kwargs")
    shaped: dict[str, Any] = public(stored)
    return {"jobId": shaped.pop("id"), **shaped}


def trip_view(store_id: str, trip_id: str, books: dict[str, str], records: dict[str, dict[str, str]],
              dead_letters: dict[str, DeadLetter]) -> dict[str, Any]:
    """What ``payq trip --json`` shows: the trip's jobs with their states and amounts, and what is captured, refunded and refundable.

    ``captured`` counts once the capture has succeeded; ``refunded`` is what
    succeeded refunds returned; ``refunding`` what refunds on their way
    (queued, waiting for the capture, retrying) will; ``refundable`` what is
    left of the captured amount once every refund that is not dead-lettered
    is taken off (0.00 until the capture has succeeded: refunds enqueued
    meanwhile wait for it). Amounts are exact strings, in the capture's currency.
    """
    capture_id, cancel_id = books.get("capture"), books.get("cancel")
    refund_ids = [name[2:] for name in books if name.startswith(("r:", "d:"))]
    capture = records.get(capture_id) if capture_id else None
    capture_result = json.loads(capture["result"]) if capture and "result" in capture else {}
    report_id = capture_result.get("reportJobId")

    def summary(job_id: str | None) -> dict[str, Any] | None:
        if job_id is None or job_id not in records:
            return None
        view = job_view(job_id, records[job_id], job_id in dead_letters)
        request = view["request"] or {}
        entry = dead_letters.get(job_id)
        return {
            "jobId": job_id, "state": view["state"],
            "amount": (request.get("amount") or request.get("totalAmount") or {}).get("amount"),
            "attempts": view["attempts"], "lastOutcome": view["lastOutcome"], "why": view["why"],
            "reconciliationId": (view["result"] or {}).get("reconciliationId"),
            "deadLetter": {"reason": entry.reason.value, "error": entry.error} if entry is not None else None,
        }

    refunds = sorted((r for r in (summary(i) for i in refund_ids) if r is not None),
                     key=lambda r: str(records[r["jobId"]].get("enqueued_at")))
    captured_cents = int(books["capture_cents"]) if "capture_cents" in books else 0
    # the books say when the capture succeeded: they outlive its record (PAYQ_TRIP_BOOKS_RETENTION_DAYS), past the refund window
    succeeded = (capture is not None and capture.get("state") == JobState.SUCCEEDED) or "captured_at" in books
    refunded = sum(cents(r["amount"]) for r in refunds if r["state"] == JobState.SUCCEEDED)
    live = int(books.get("refunded", 0))
    return {
        "storeId": store_id,
        "shoppingTripId": trip_id,
        "currency": books.get("currency"),
        "capture": summary(capture_id),
        "cancel": summary(cancel_id),
        "refunds": refunds,
        "report": summary(report_id),
        "captured": money(captured_cents) if succeeded else "0.00",
        "refunded": money(refunded),
        "refunding": money(live - refunded),
        # what the capture took can be refunded; before it succeeds (or once it is dead) nothing was taken
        "refundable": (money(captured_cents - live) if succeeded else "0.00") if capture_id else None,
        "capturedAt": iso(float(books["captured_at"])) if "captured_at" in books else None,
        "deadLetters": [dead_letter_view(entry) for entry in dead_letters.values()],
    }


# what is the operators' alone: the worker that ran a job, its holder and lease, recoveries
_OPERATORS_ONLY = ("worker", "holder", "leaseUntil", "recoveries", "recoveredFrom", "traceId")


def public_job(view: dict[str, Any]) -> dict[str, Any]:
    """A job's view as the HTTP API shows it to a store backend: :func:`job_view` less the operators' internals.

    The worker that ran it and its holder are left out (a host name is the operators').
    """
    return {name: value for name, value in view.items() if name not in _OPERATORS_ONLY}


def _public_dead_letter(entry: dict[str, Any]) -> dict[str, Any]:
    # what the store backend's job came to, not how operators handled it: no task name, worker or replay history
    return {name: entry.get(name) for name in ("jobId", "operation", "reason", "error", "status", "attempts", "deadAt", "replays")}


def public_trip(view: dict[str, Any]) -> dict[str, Any]:
    """A trip's view as the HTTP API shows it to a store backend: :func:`trip_view`, its dead letters without the operators' internals."""
    return {**view, "deadLetters": [_public_dead_letter(e) for e in view["deadLetters"]]}


def stats_view(stats: Stats) -> dict[str, Any]:
    """``payq stats --json``: the snapshot in the public shape; what was keyed by a name (a queue, a reason, an endpoint) is a list of objects."""
    return {
        "takenAt": iso(stats.taken_at),
        "queues": [{"queue": queue, "depth": depth} for queue, depth in stats.queues.items()],
        "unacked": stats.unacked,
        "deferred": stats.deferred,
        "deferredNextDueAt": iso(stats.deferred_next_due),
        "waiting": stats.waiting,
        "deadLetters": [{"reason": reason, "count": count} for reason, count in stats.dead_letters.items()],
        "pauses": [{"operation": operation, "until": iso(until)} for operation, until in stats.pauses.items()],
        "paces": [{"operation": operation, **asdict(pace)} for operation, pace in stats.paces.items()],
        "apiCalls": [{"operation": operation, "status": status, "count": count}
                     for operation, calls in stats.api_calls.items() for status, count in calls.items()],
        "liveWorkers": [{"worker": seen.worker, "lastBeatAt": iso(seen.last_beat), "ageSeconds": seen.age} for seen in stats.live_workers],
        "recovered": stats.recovered,
        "redis": public(asdict(stats.redis)) if stats.redis is not None else None,
        "outbox": stats.outbox,
        "outboxOldestAt": iso(stats.outbox_oldest),
        "stores": [{"storeId": load.store, "openJobs": load.open_jobs,
                    "callsLastMinute": [{"operation": op, "count": n, "share": load.shares.get(op, 0.0)} for op, n in load.calls.items()]}
                   for load in stats.stores],
        "memory": memory_view(stats.memory) if stats.memory is not None else None,
    }


def retention_of(settings: Settings) -> tuple[float, float]:
    """Days a job record is kept and days a trip's books are: what the memory's projection multiplies by."""
    return settings.job_retention_days, settings.trip_books_retention_days


def memory_view(memory: Memory) -> dict[str, Any]:
    """Redis's memory in the public shape: bytes, the limit, keys by kind (estimated), a trip's cost, the rate, the projection, a warning."""
    return {
        "usedBytes": memory.used, "maxmemoryBytes": memory.maxmemory, "policy": memory.policy, "keys": memory.keys,
        "keysByKind": [{"kind": kind, "keys": count} for kind, count in memory.by_kind.items()],
        "tripBytes": round(memory.per_trip) if memory.per_trip is not None else None,
        "tripsPerSecond": memory.trips_per_second,
        "projectedBytes": round(memory.projected) if memory.projected is not None else None,
        "warning": memory.warning,
    }


def memory_lines(memory: Memory, settings: Settings) -> list[str]:
    """``payq stats``'s lines about Redis's memory (docs/scaling.md says how to read them)."""
    limit = f" of maxmemory {_mib(memory.maxmemory)} ({memory.fill:.0%}, {memory.policy})" if memory.fill is not None else " (no maxmemory)"
    lines = [f"redis memory: {_mib(memory.used)}{limit}, {memory.keys} keys"]
    if memory.by_kind:
        lines.append("  keys by kind (estimated from a sample): " + ", ".join(f"{kind} {n}" for kind, n in memory.by_kind.items()))
    if memory.per_trip is not None and memory.projected is not None:
        lines.append(f"  a settled trip: {memory.per_trip:,.0f} bytes (sampled); at {memory.trips_per_second:g} trips/s, kept"
                     f" {settings.job_retention_days:g} days (records) and {settings.trip_books_retention_days:g} days (books):"
                     f" {_mib(memory.projected)} at steady state")
    if memory.warning is not None:
        lines.append(f"  warning: {memory.warning}")
    return lines


def _mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"


def read_trip(jobs: JobStore, dead_letters: DeadLetterStore, store_id: str, trip_id: str) -> dict[str, Any] | None:
    """The trip's view (:func:`trip_view`) read from the stores, or None when payq has no jobs for it (or they are past their retention)."""
    books = jobs.books(store_id, trip_id)
    if not books:
        return None
    records = jobs.records(trip_job_ids(books))
    report = report_job_id(books, records)
    if report:
        records.update(jobs.records([report]))
    entries = {job_id: e for job_id in records if (e := dead_letters.get(job_id)) is not None}
    return trip_view(store_id, trip_id, books, records, entries)


def idempotency_key(operation: str, kwargs: dict[str, Any]) -> str:
    """What makes a job safe to send again, from its own fields: the table of operations' key fields and their values.

    A refund's ``refundRequestId`` is the API's idempotency key; a capture's,
    a cancel's and a report's are their trip (and a report's time), which the
    API takes once each and from which payq makes the job's id; a
    notification's is its ``webhook-id``, the event's ``id``.
    """
    spec = OPERATIONS.get(Operation(operation)) if operation in {op.value for op in Operation} else None
    if spec is None:
        return f"webhook-id {kwargs.get('id', '-')}"
    return ", ".join(f"{name} {kwargs.get(name, '-')}" for name in spec.key_fields)


@dataclass(frozen=True)
class Subject:
    """What a job is about, from its kwargs: its store and trip, and for a notification the event and the job it tells of."""

    store: str
    trip: str
    event: str | None = None
    about: str | None = None

    def describe(self) -> str:
        """``store s1, trip t1``; a notification: ``job.succeeded of capture:s1:t1 (store s1, trip t1)``."""
        where = ", ".join(part for part in (f"store {self.store}" if self.store else "", f"trip {self.trip}" if self.trip else "") if part)
        if self.event is None:
            return where or "no store or trip"
        return f"{self.event} of {self.about or '-'}" + (f" ({where})" if where else "")


def subject_of(kwargs: dict[str, Any]) -> Subject:
    """A job's :class:`Subject`: a payment job names its store and trip; a notification's are in its ``data``, with the job it tells of."""
    if "data" in kwargs and isinstance(kwargs["data"], dict):
        data = kwargs["data"]
        return Subject(str(data.get("storeId") or ""), str(data.get("shoppingTripId") or ""), str(kwargs.get("type") or "event"),
                       str(data.get("jobId") or "") or None)
    return Subject(str(kwargs.get("storeId") or ""), str(kwargs.get("shoppingTripId") or ""))
