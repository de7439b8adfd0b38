"""Watching a demo run: which jobs have settled, why jobs were retried, and the summary at the end.

Everything comes from payq's job records (the same ones ``payq job`` reads):
their states, and each job's history of deferrals, whose causes and failures
are fields (a job that was retried and then succeeded still says why it waited).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from tasks.jobs import settled
from tasks.jobs.deferral import Deferral
from tasks.redis import keys
from tasks.states import SETTLED_STATES, DeferCause, JobState
from tasks.store.deadletters import DeadLetter, DeadLetterStore

OPERATION_LABELS = {"capture": "captures", "feedback": "payment-status reports", "cancel": "cancels", "refund": "refunds"}


def retry_cause(deferral: Deferral) -> str:
    """Group a deferral into a cause a person reads at a glance, from its fields.

    A 503 that asked for 2 s reads "HTTP 503 Service Unavailable: retried after the 2s the API asked for".
    """
    if deferral.cause is DeferCause.PAUSED:
        return f"{deferral.operation.value} endpoint paused after a 429: waited without calling the API"
    if deferral.cause is DeferCause.PACED:
        return f"{deferral.operation.value} endpoint paced: waited its turn without calling the API"
    label = deferral.failure.headline() if deferral.failure is not None else "failed"
    if deferral.cause is DeferCause.RETRY_AFTER:
        return f"{label}: retried after the {deferral.delay:g}s the API asked for"
    return f"{label}: exponential backoff"


@dataclass
class Snapshot:
    """The tracked jobs' records at one moment: job id -> record (empty if Redis has none)."""

    records: dict[str, dict[str, str]]

    retries: dict[str, int] = field(default_factory=dict)

    def states(self) -> Counter[JobState]:
        """How many jobs are in each state."""
        return Counter(self.state(job_id) for job_id in self.records)

    def state(self, job_id: str) -> JobState:
        """One job's state."""
        return JobState(self.records.get(job_id, {}).get("state", JobState.QUEUED))

    def all_settled(self) -> bool:
        """Whether every tracked job has succeeded or been dead-lettered."""
        return all(self.state(job_id) in SETTLED_STATES for job_id in self.records)


class Tracker:
    """Follows a set of job ids in Redis, adding each capture's chained payment-status report as it appears."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self.ids: list[str] = []

    def track(self, job_ids: Iterable[str]) -> None:
        """Follow these jobs too."""
        for job_id in job_ids:
            if job_id not in self.ids:
                self.ids.append(job_id)

    def poll(self) -> Snapshot:
        """Read every tracked record and how often each was deferred (a pipelined round trip or two)."""
        records: dict[str, dict[str, str]] = {}
        retries: dict[str, int] = {}
        while True:
            pending = [i for i in self.ids if i not in records]
            if not pending:
                return Snapshot(records, retries)
            pipe = self._redis.pipeline(transaction=False)
            for job_id in pending:
                pipe.hgetall(keys.job(job_id))
                pipe.llen(keys.deferrals(job_id))
            replies = pipe.execute()
            for job_id, record, deferred in zip(pending, replies[::2], replies[1::2], strict=True):
                records[job_id] = record = settled.expand(job_id, record)
                retries[job_id] = int(deferred)
                if record.get("op") == "capture" and record.get("state") == JobState.SUCCEEDED and "result" in record:
                    report = json.loads(record["result"]).get("reportJobId")
                    if report:
                        self.track([report])

    def deferrals(self, job_ids: Iterable[str]) -> list[tuple[str, Deferral]]:
        """(job id, deferral) of every recorded deferral of these jobs."""
        ids = list(job_ids)
        pipe = self._redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.lrange(keys.deferrals(job_id), 0, -1)
        found: list[tuple[str, Deferral]] = []
        for job_id, items in zip(ids, pipe.execute(), strict=True):
            for item in items:
                data = json.loads(item)
                data.pop("at", None)
                found.append((job_id, Deferral.from_json(json.dumps(data))))
        return found


def progress_line(snapshot: Snapshot, restarts: int, elapsed: float) -> str:
    """One line of progress for stderr."""
    states = snapshot.states()
    settled = states[JobState.SUCCEEDED] + states[JobState.DEAD]
    return (
        f"settled {settled}/{len(snapshot.records)}  succeeded {states[JobState.SUCCEEDED]}  "
        f"dead-lettered {states[JobState.DEAD]}  deferred {states[JobState.DEFERRED]}  waiting {states[JobState.WAITING]}  "
        f"running {states[JobState.RUNNING]}  "
        f"queued {states[JobState.QUEUED]}  retries {sum(snapshot.retries.values())}  worker restarts {restarts}  {elapsed:.0f}s"
    )


@dataclass(frozen=True)
class Notifications:
    """What the sandbox's webhook receiver got for the run's settled jobs: events, those with a valid signature, jobs covered."""

    expected: int
    received: int
    signed: int
    jobs: int
    types: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, deliveries: list[dict[str, Any]], expected: int) -> Notifications:
        """From ``GET /admin/notifications`` entries (already narrowed to the run's jobs)."""
        events = [d["event"] for d in deliveries]
        return cls(expected, len(deliveries), sum(1 for d in deliveries if d.get("signatureValid") is True),
                   len({e["data"]["jobId"] for e in events}), dict(Counter(str(e.get("type")) for e in events)))


@dataclass
class Summary:
    """What a demo run did, for the report at the end."""

    trips: int
    elapsed: float
    snapshot: Snapshot
    retries: list[tuple[str, Deferral]]
    dead_letters: list[DeadLetter]
    restarts: dict[str, int] = field(default_factory=dict)
    notifications: Notifications | None = None

    @classmethod
    def gather(cls, trips: int, elapsed: float, snapshot: Snapshot, tracker: Tracker, dead_letters: DeadLetterStore,
               restarts: dict[str, int], notifications: Notifications | None = None) -> Summary:
        """Collect the run's figures: retries from the jobs' deferral histories, dead letters from the store."""
        dead_ids = [job_id for job_id in snapshot.records if snapshot.state(job_id) is JobState.DEAD]
        entries = [entry for entry in (dead_letters.get(job_id) for job_id in dead_ids) if entry is not None]
        return cls(trips, elapsed, snapshot, tracker.deferrals(snapshot.records), entries, restarts, notifications)

    def succeeded_by_operation(self) -> Counter[str]:
        """Succeeded jobs per operation."""
        return Counter(r.get("op", "?") for job_id, r in self.snapshot.records.items() if self.snapshot.state(job_id) is JobState.SUCCEEDED)

    def retried_jobs(self) -> set[str]:
        """Jobs that were retried at least once: seen in an event, or that needed more than one API call."""
        seen = {job_id for job_id, _ in self.retries}
        seen |= {job_id for job_id, r in self.snapshot.records.items() if int(r.get("attempts", 0) or 0) > 1}
        return seen

    def unsettled(self) -> dict[str, str]:
        """Job id -> state, for jobs that had not settled when the run ended."""
        return {job_id: self.snapshot.state(job_id).value for job_id in self.snapshot.records
                if self.snapshot.state(job_id) not in SETTLED_STATES}

    def render(self) -> str:
        """The summary as printed: succeeded, retried and why, dead-lettered and why."""
        states = self.snapshot.states()
        total = len(self.snapshot.records)
        unsettled = self.unsettled()
        head = f"all {total} settled" if not unsettled else f"{total - len(unsettled)} of {total} settled, {len(unsettled)} NOT settled"
        lines = [f"payq demo: {self.trips} trips, {total} jobs, {head} in {self.elapsed:.1f}s", ""]
        by_op = self.succeeded_by_operation()
        detail = ", ".join(f"{by_op[op]} {label}" for op, label in OPERATION_LABELS.items() if by_op[op])
        lines.append(f"  succeeded      {states[JobState.SUCCEEDED]:>4}   {detail}")
        causes = Counter(retry_cause(deferral) for _, deferral in self.retries)
        lines.append(f"  retried        {len(self.retried_jobs()):>4}   jobs, {len(self.retries)} retries in all:")
        for cause, n in causes.most_common():
            lines.append(f"                 {n:>4}   {cause}")
        lines.append(f"  dead-lettered  {states[JobState.DEAD]:>4}   jobs:")
        groups: dict[str, list[DeadLetter]] = {}
        for entry in self.dead_letters:
            status = f" (HTTP {entry.status})" if entry.status else ""
            groups.setdefault(f"{entry.reason}{status}", []).append(entry)
        for label, entries in sorted(groups.items(), key=lambda item: -len(item[1])):
            first = entries[0]
            lines.append(f"                 {len(entries):>4}   {label}: {first.error_msg or first.detail or first.error}")
            shown = ", ".join(e.id for e in entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
            lines.append(f"                        {shown}")
        if unsettled:
            lines.append(f"  not settled    {len(unsettled):>4}   " + ", ".join(f"{k} ({v})" for k, v in list(unsettled.items())[:5]))
        if self.notifications is not None:
            got = self.notifications
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(got.types.items()))
            lines.append(f"  notified       {got.jobs:>4}   of {got.expected} settled jobs: {got.received} events at the sandbox's receiver "
                         f"({kinds or 'none'}), {got.signed} with a valid signature")
        restarts = ", ".join(f"{name} {n}" for name, n in self.restarts.items() if n) or "none"
        lines.append(f"  restarts             {restarts}")
        return "\n".join(lines)
