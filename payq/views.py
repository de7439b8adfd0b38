"""What payq shows of a job and of a trip, built from their records: JSON-ready, times as UTC ISO 8601 (the CLI and `payq serve`).

:func:`read_trip` reads a trip's records from the stores the way ``payq trip``
and the console both do; the views themselves only shape what was read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tasks.jobs.books import cents, money
from tasks.jobs.deferral import Deferral, failure_from
from tasks.notify.events import public_result
from tasks.states import JobState
from tasks.store.deadletters import DeadLetter, DeadLetterStore
from tasks.store.records import JobStore


def iso(epoch: float | None) -> str | None:
    """``epoch`` as ``2026-11-27T13:00:00Z``, or None."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_view(
    job_id: str, record: dict[str, str], in_dead_letters: bool, deferrals: list[dict[str, Any]] | None = None,
    lease_until: float | None = None,
) -> dict[str, Any]:
    """What ``payq job`` shows for a job record.

    ``why`` says why a deferred job waits, or a dead one's dead-letter reason;
    ``last_outcome`` is the latest call's result as a person reads it;
    ``deferrals`` (when given) lists why the job waited before, oldest first;
    a running job's ``holder`` is the worker process that holds it, until
    ``lease_until`` (when given) unless its heartbeat renews the lease.
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
        "id": job_id,
        "operation": record.get("op"),
        "state": "dead-lettered" if state is JobState.DEAD else state.value,
        "deferred_until": when("deferred_until") if state is JobState.DEFERRED else None,
        "why": why,
        "dead_letter": in_dead_letters if state is JobState.DEAD else None,
        "attempts": int(record.get("attempts", 0)),
        "replays": int(record.get("replays", 0)),
        "last_outcome": last_outcome,
        "result": result,
        "report_job_id": result.get("reportJobId") if isinstance(result, dict) else None,
        "worker": record.get("worker"),
        "enqueued_at": when("enqueued_at"),
        "first_attempt_at": when("first_attempt_at"),
        "last_attempt_at": when("last_attempt_at"),
        "updated_at": when("updated_at"),
        "kwargs": json.loads(record["kwargs"]) if "kwargs" in record else None,
        "waiting_for": record.get("waiting_for") if state is JobState.WAITING else None,
        "holder": record.get("holder") if state is JobState.RUNNING else None,
        "lease_until": iso(lease_until) if lease_until is not None and state is JobState.RUNNING else None,
        "recoveries": int(record["recoveries"]) if "recoveries" in record else None,
        "recovered_from": record.get("recovered_from"),
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


def trip_view(store_id: str, trip_id: str, books: dict[str, str], records: dict[str, dict[str, str]],
              dead_letters: dict[str, DeadLetter]) -> dict[str, Any]:
    """What ``payq trip`` shows: the trip's jobs with their states and amounts, and what is captured, refunded and refundable.

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
        kwargs = view["kwargs"] or {}
        entry = dead_letters.get(job_id)
        return {
            "id": job_id, "state": view["state"], "amount": (kwargs.get("amount") or kwargs.get("totalAmount") or {}).get("amount"),
            "attempts": view["attempts"], "last_outcome": view["last_outcome"], "why": view["why"],
            "reconciliationId": (view["result"] or {}).get("reconciliationId"),
            "dead_letter": {"reason": entry.reason.value, "error": entry.error} if entry is not None else None,
        }

    refunds = sorted((r for r in (summary(i) for i in refund_ids) if r is not None), key=lambda r: str(records[r["id"]].get("enqueued_at")))
    captured_cents = int(books["capture_cents"]) if "capture_cents" in books else 0
    succeeded = capture is not None and capture.get("state") == JobState.SUCCEEDED
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
        "captured_at": iso(float(books["captured_at"])) if "captured_at" in books else None,
        "dead_letters": [entry.model_dump(mode="json") for entry in dead_letters.values()],
    }


def public_job(view: dict[str, Any]) -> dict[str, Any]:
    """A job's view as the HTTP API shows it to a store backend: camelCase, UTC ISO 8601 times, and no operators' internals.

    The worker that ran it is left out (a host name is the operators'); the
    job's wire fields are ``request`` (``kwargs`` is the task's word); a
    capture's ``result.settledAt`` is a time like the others, not epoch seconds.
    """
    public = {
        "id": view["id"], "operation": view["operation"], "state": view["state"], "deferredUntil": view["deferred_until"],
        "why": view["why"], "deadLetter": view["dead_letter"], "attempts": view["attempts"], "replays": view["replays"],
        "lastOutcome": view["last_outcome"], "result": public_result(view["result"]) if view["result"] else view["result"],
        "reportJobId": view["report_job_id"],
        "enqueuedAt": view["enqueued_at"], "firstAttemptAt": view["first_attempt_at"], "lastAttemptAt": view["last_attempt_at"],
        "updatedAt": view["updated_at"], "request": view["kwargs"], "waitingFor": view["waiting_for"],
    }
    if "deferrals" in view:
        public["deferrals"] = view["deferrals"]
    return public


def _public_trip_job(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {
        "id": summary["id"], "state": summary["state"], "amount": summary["amount"], "attempts": summary["attempts"],
        "lastOutcome": summary["last_outcome"], "why": summary["why"], "reconciliationId": summary["reconciliationId"],
        "deadLetter": summary["dead_letter"],
    }


def _public_dead_letter(entry: dict[str, Any]) -> dict[str, Any]:
    # what the store backend's job came to, not how operators handled it: no task name, worker or replay history
    return {
        "jobId": entry["id"], "operation": entry["operation"], "reason": entry["reason"], "error": entry["error"],
        "status": entry.get("status"), "attempts": entry["attempts"], "deadAt": iso(entry["dead_at"]), "replays": entry.get("replays", 0),
    }


def public_trip(view: dict[str, Any]) -> dict[str, Any]:
    """A trip's view as the HTTP API shows it to a store backend: camelCase, UTC ISO 8601 times, and no operators' internals."""
    return {
        "storeId": view["storeId"], "shoppingTripId": view["shoppingTripId"], "currency": view["currency"],
        "capture": _public_trip_job(view["capture"]), "cancel": _public_trip_job(view["cancel"]),
        "refunds": [_public_trip_job(r) for r in view["refunds"]], "report": _public_trip_job(view["report"]),
        "captured": view["captured"], "refunded": view["refunded"], "refunding": view["refunding"], "refundable": view["refundable"],
        "capturedAt": view["captured_at"], "deadLetters": [_public_dead_letter(e) for e in view["dead_letters"]],
    }


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
