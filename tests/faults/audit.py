"""Reading the end of a scenario: what Redis still holds, what the sandbox received, and which jobs were lost or repeated.

A job is **lost** if it never reached a terminal state, or if its effect never
reached the sandbox (a capture not charged, or charged another amount; a
capture without its payment-status report). A **duplicate** is an API call
beyond the first for the same job; each scenario says which causes it allows.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import redis

from payapi.operations import QUEUES, Operation
from tasks.jobs import settled
from tasks.producer import prepare
from tasks.redis import keys
from tasks.store import lanes
from tasks.store.records import NewJob
from tests.support.names import path_of
from tests.support.sandbox import SandboxProcess


def capture_jobs(store: str, amounts: dict[str, Decimal], currency: str = "USD") -> list[NewJob]:
    """Prepared captures, one per trip, for ``Producer.publish`` (the bulk path)."""
    return [prepare("capture", {"storeId": store, "shoppingTripId": trip, "amount": {"amount": amount, "code": currency}})
            for trip, amount in amounts.items()]


def records(rdb: redis.Redis, job_ids: Sequence[str], *fields: str) -> list[dict[str, str | None]]:
    """The named fields of each job's record as payq reads it (a settled one expanded: tasks/jobs/settled.py), pipelined;
    a missing record gives all ``None``."""
    pipe = rdb.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hgetall(keys.job(job_id))
    read = [settled.expand(job_id, stored) if stored else {} for job_id, stored in zip(job_ids, pipe.execute(), strict=True)]
    return [{name: record.get(name) for name in fields} for record in read]


def states(rdb: redis.Redis, job_ids: Sequence[str]) -> dict[str, int]:
    """How many of the jobs are in each state (``missing`` for no record)."""
    counts: dict[str, int] = defaultdict(int)
    for record in records(rdb, job_ids, "state"):
        counts[record["state"] or "missing"] += 1
    return dict(counts)


def leftovers(rdb: redis.Redis) -> dict[str, int]:
    """Messages still queued (per queue) or fetched (in workers' in-flight lists), jobs running (held under a lease), and jobs deferred."""
    lists = list(rdb.scan_iter(match=f"{keys.INFLIGHT_PREFIX}*", count=1000))
    depths = lanes.depths(rdb, QUEUES)
    pipe = rdb.pipeline(transaction=False)
    for key in lists:
        pipe.llen(key)
    pipe.zcard(keys.LEASES)
    pipe.zcard(keys.DEFERRED)
    *fetched, running, deferred = (int(n) for n in pipe.execute())
    found = {**depths, "fetched": sum(fetched), "running": running, "deferred": deferred}
    return {name: n for name, n in found.items() if n}


def body(entry: dict[str, Any]) -> dict[str, Any]:
    """A logged request's JSON body."""
    parsed: dict[str, Any] = json.loads(entry["body"])
    return parsed


def calls_by_trip(api: SandboxProcess, operation: Operation) -> dict[str, list[dict[str, Any]]]:
    """The sandbox's log for ``operation``, grouped by shoppingTripId, oldest first."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in api.requests(path_of(operation)):
        grouped[body(entry)["shoppingTripId"]].append(entry)
    return grouped


@dataclass
class CaptureAudit:
    """Captures and their reports as the sandbox and Redis saw them."""

    lost: dict[str, str] = field(default_factory=dict)  # trip -> what is missing
    capture_calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    report_calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def repeated(self, operation: Operation) -> dict[str, int]:
        """Trips whose capture (or report) reached the sandbox more than once: trip -> extra calls."""
        calls = self.capture_calls if operation == "capture" else self.report_calls
        return {trip: len(entries) - 1 for trip, entries in calls.items() if len(entries) > 1}

    def answered_twice(self, operation: Operation) -> dict[str, list[dict[str, Any]]]:
        """Trips whose capture (or report) the sandbox answered 200 more than once: trip -> those calls."""
        calls = self.capture_calls if operation == "capture" else self.report_calls
        answered = {trip: [e for e in entries if e["status"] == 200] for trip, entries in calls.items()}
        return {trip: entries for trip, entries in answered.items() if len(entries) > 1}

    def differing_payloads(self) -> list[str]:
        """Trips whose repeated calls did not all carry the same body (a repeat must be the same request)."""
        return [trip for calls in (self.capture_calls, self.report_calls)
                for trip, entries in calls.items() if len({e["body"] for e in entries}) > 1]

    @property
    def duplicates(self) -> int:
        """API calls beyond the first, captures and reports together."""
        return sum(self.repeated("capture").values()) + sum(self.repeated("feedback").values())


def audit_captures(api: SandboxProcess, rdb: redis.Redis, store: str, amounts: dict[str, Decimal], currency: str = "USD") -> CaptureAudit:
    """Check every capture of ``amounts`` (trip -> amount) end to end; see the module docstring for "lost"."""
    audit = CaptureAudit(capture_calls=calls_by_trip(api, "capture"), report_calls=calls_by_trip(api, "feedback"))
    ledger = {t["shoppingTripId"]: t for t in api.ledger() if t["storeId"] == store}
    trips = list(amounts)
    capture_records = records(rdb, [f"capture:{store}:{t}" for t in trips], "state", "result")
    report_ids: list[str] = []
    for trip, record in zip(trips, capture_records, strict=True):
        result = json.loads(record["result"]) if record["result"] else {}
        report_ids.append(str(result.get("reportJobId", "")))
        expected = {"amount": format(amounts[trip], "f"), "code": currency}
        entry = ledger.get(trip)
        if record["state"] != "succeeded":
            audit.lost[trip] = f"capture job {record['state'] or 'missing'}"
        elif entry is None or entry["captured"] != expected:
            audit.lost[trip] = f"captured {entry and entry['captured']}, expected {expected}"
        else:
            reports = {r["paymentStatusTime"]: r for r in entry["reports"]}
            if len(reports) != 1:
                audit.lost[trip] = f"{len(reports)} distinct payment-status reports"
            else:
                (report,) = reports.values()
                if report["totalAmount"] != expected or report["settledAmount"] != expected:
                    audit.lost[trip] = f"report of {report['totalAmount']} / {report['settledAmount']}, expected {expected}"
    for trip, record in zip(trips, records(rdb, report_ids, "state"), strict=True):
        if trip not in audit.lost and record["state"] != "succeeded":
            audit.lost[trip] = f"report job {record['state'] or 'missing'}"
    return audit


def first_call_after(entries: Iterable[dict[str, Any]], moment: float) -> float | None:
    """The arrival time of the first logged call after ``moment``."""
    times = [e["time"] for e in entries if e["time"] > moment]
    return min(times) if times else None


def chained_reports(rdb: redis.Redis, capture_ids: Sequence[str]) -> list[str]:
    """The report jobs chained by those of the captures that have succeeded so far."""
    return [json.loads(r["result"])["reportJobId"] for r in records(rdb, capture_ids, "result") if r["result"]]


def all_succeeded(rdb: redis.Redis, capture_ids: Sequence[str]) -> bool:
    """Whether every capture and every report it chained has succeeded, and Redis holds no message or deferred job."""
    if leftovers(rdb) or any(r["state"] != "succeeded" for r in records(rdb, capture_ids, "state")):
        return False
    reports = chained_reports(rdb, capture_ids)
    return len(reports) == len(capture_ids) and all(r["state"] == "succeeded" for r in records(rdb, reports, "state"))


def traceback_ends(log: str) -> list[str]:
    """The exception line that ends each traceback in a worker's log."""
    lines = log.splitlines()
    ends = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            ends.append(lines[j] if j < len(lines) else "(log ends inside a traceback)")
    return ends


def unhandled_tracebacks(log: str) -> list[str]:
    """Tracebacks in a worker's log: every one is unhandled (a job handed back to Redis is one line, its ``Reject`` not reported)."""
    return traceback_ends(log)


def unfinished(rdb: redis.Redis, capture_ids: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """Captures, and reports chained so far, that have not succeeded: job id -> state and attempts."""
    ids = list(capture_ids) + chained_reports(rdb, capture_ids)
    return {job_id: r for job_id, r in zip(ids, records(rdb, ids, "state", "attempts"), strict=True) if r["state"] != "succeeded"}


def progress(rdb: redis.Redis, capture_ids: Sequence[str]) -> str:
    """Where a run stands, for a timeout's message: capture and report states, and what Redis still holds."""
    reports = chained_reports(rdb, capture_ids)
    return (f"captures {states(rdb, capture_ids)}, reports {states(rdb, reports)} of {len(reports)}, "
            f"Redis holds {leftovers(rdb) or 'nothing'}")


@dataclass(frozen=True)
class Settled:
    """How a run ended: ``stuck`` says where it stood if it never settled; ``stranded`` lists jobs left without a message.

    A stranded job is one whose record says it is still to run while Redis
    holds no message (queued, or fetched into a worker's in-flight list), no
    running job's lease and no deferred entry for anything, for ``quiet``
    seconds: nothing will ever run it. (kombu's Redis transport took a message
    off its list into the worker's memory; a worker killed then lost it. This
    suite found that; since issue 29 a fetched message stays in Redis.)
    """

    stuck: str | None = None
    stranded: dict[str, dict[str, str | None]] = field(default_factory=dict)


def settle(rdb: redis.Redis, capture_ids: Sequence[str], timeout: float, *, quiet: float = 2.0, interval: float = 0.5) -> Settled:
    """Wait until every capture and its report has succeeded, or until nothing is left that could run the rest.

    Unfinished jobs count as stranded once Redis has held no message (queued
    or fetched), no running job and no deferred job for ``quiet`` seconds with
    those same jobs unfinished.
    """
    deadline = time.monotonic() + timeout
    quiet_for = quiet
    quiet_since: tuple[float, dict[str, dict[str, str | None]]] | None = None
    while not all_succeeded(rdb, capture_ids):
        now = time.monotonic()
        if leftovers(rdb):
            quiet_since = None
        else:
            left = unfinished(rdb, capture_ids)
            if quiet_since is None or quiet_since[1] != left:
                quiet_since = (now, left)
            elif now - quiet_since[0] >= quiet_for:
                return Settled(stranded=left)
        if now > deadline:
            return Settled(stuck=progress(rdb, capture_ids))
        time.sleep(interval)  # poll interval, bounded by the deadline
    return Settled()


def trip_of(job_id: str) -> str:
    """The shoppingTripId in a capture's or a report's job id (``capture:S:T``, ``feedback:S:T:time``)."""
    return job_id.split(":")[2]


# workers/housekeeping.py logs these when it gives back what a dead worker held
_PUT_BACK = re.compile(r"put back (\d+) messages a dead worker had fetched")
_GIVEN_BACK = re.compile(r"gave back (\d+) jobs whose holder's lease lapsed")
# Seconds after which unfinished jobs with nothing in Redis to run them are stranded: whatever a dead worker held
# is in its in-flight lists (counted as leftovers) until given back, so a quiet Redis is a real one; 10 s for a busy machine.
STRANDED_AFTER = 10.0


def given_back(logs: Iterable[str]) -> tuple[int, int]:
    """From the workers' logs: (fetched messages put back, running jobs given back) after their workers died."""
    texts = list(logs)
    return (sum(int(n) for log in texts for n in _PUT_BACK.findall(log)), sum(int(n) for log in texts for n in _GIVEN_BACK.findall(log)))
