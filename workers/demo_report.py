"""Watching a demo run: which jobs have settled, why jobs were retried, and the summary at the end.

Settlement comes from payq's job records (the same ones ``payq job`` reads);
the reasons for retries come from Celery's ``task-retried`` events (the same
ones Flower shows), because a job record keeps only its latest outcome and a
job that was retried and then succeeded no longer says why it waited.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from workers import keys
from workers.deadletters import DeadLetter, DeadLetterStore

SETTLED = ("succeeded", "dead")
_PAUSED = re.compile(r"^(\w+) endpoint paused until \S+ after HTTP 429")
_STATUS = re.compile(r"^HTTP (\d{3}) ([^:;]+)")
_RETRY_AFTER = re.compile(r"; retry after ([\d.]+)s")
# Celery sends repr(Retry(..., exc=Deferred('reason; runs again at T'))); the reason is inside the Deferred
_DEFERRED_REPR = re.compile(r"Deferred\((['\"])(.*?)\1\)", re.DOTALL)
_RUNS_AGAIN = re.compile(r"; runs again at [\d.]+$")
OPERATION_LABELS = {"capture": "captures", "feedback": "payment-status reports", "cancel": "cancels", "refund": "refunds"}


def retry_cause(reason: str) -> str:
    """Group a deferred job's reason (``tasks.execution``'s wording) into a cause a person reads at a glance.

    >>> retry_cause("HTTP 503 Service Unavailable: ServiceUnavailableException; retry after 2s")
    'HTTP 503 Service Unavailable: retried after the 2s the API asked for'
    """
    if match := _PAUSED.match(reason):
        return f"{match.group(1)} endpoint paused after a 429: waited without calling the API"
    status = _STATUS.match(reason)
    # without a status it was no answer at all: "timeout", "connection failed"
    label = f"HTTP {status.group(1)} {status.group(2).strip()}" if status else reason.split(":")[0].split(";")[0].strip()
    if match := _RETRY_AFTER.search(reason):
        return f"{label}: retried after the {match.group(1)}s the API asked for"
    if "; backoff after attempt" in reason:
        return f"{label}: exponential backoff"
    return f"{label}: retried"


def reason_from_event(exception: str) -> str:
    """The deferral reason inside a ``task-retried`` event's ``exception`` (the repr of payq's ``Deferred``)."""
    match = _DEFERRED_REPR.search(exception)
    text = match.group(2) if match else exception
    return _RUNS_AGAIN.sub("", text)


class RetryEvents:
    """Collects ``task-retried`` events on a background thread (all of them: :class:`Summary` keeps the run's own)."""

    def __init__(self, broker_url: str) -> None:
        self._app = Celery("payq-demo", broker=broker_url)
        self._lock = threading.Lock()
        self._retries: list[tuple[str, str]] = []
        self._listening = threading.Event()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, name="payq-demo-events", daemon=True)
        self.error: str | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start listening; returns once subscribed (or after ``timeout``, with :attr:`error` set if it failed)."""
        self._thread.start()
        self._listening.wait(timeout)

    def _run(self) -> None:
        try:
            with self._app.connection_for_read() as connection:
                self._receiver = self._app.events.Receiver(connection, handlers={"task-retried": self._on_retried})
                original = self._receiver.on_iteration

                def on_iteration() -> None:
                    self._listening.set()
                    original()

                self._receiver.on_iteration = on_iteration
                self._receiver.capture(limit=None, timeout=None, wakeup=False)
        except Exception as exc:  # the summary says the reasons are missing; the demo goes on
            self.error = f"{type(exc).__name__}: {exc}"
            self._listening.set()

    def _on_retried(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._retries.append((str(event.get("uuid", "")), reason_from_event(str(event.get("exception", "")))))

    def retries(self) -> list[tuple[str, str]]:
        """(job id, reason) of every retry seen so far."""
        with self._lock:
            return list(self._retries)

    def stop(self) -> None:
        """Stop listening (within about a second)."""
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=3)


@dataclass
class Snapshot:
    """The tracked jobs' records at one moment: job id -> record (empty if Redis has none)."""

    records: dict[str, dict[str, str]]

    def states(self) -> Counter[str]:
        """How many jobs are in each state (queued, running, deferred, succeeded, dead)."""
        return Counter(r.get("state", "queued") for r in self.records.values())

    def state(self, job_id: str) -> str:
        """One job's state."""
        return self.records.get(job_id, {}).get("state", "queued")

    def all_settled(self) -> bool:
        """Whether every tracked job has succeeded or been dead-lettered."""
        return all(r.get("state") in SETTLED for r in self.records.values())


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
        """Read every tracked record (a pipelined round trip or two)."""
        records: dict[str, dict[str, str]] = {}
        while True:
            pending = [i for i in self.ids if i not in records]
            if not pending:
                return Snapshot(records)
            pipe = self._redis.pipeline(transaction=False)
            for job_id in pending:
                pipe.hgetall(keys.job(job_id))
            for job_id, record in zip(pending, pipe.execute(), strict=True):
                records[job_id] = record
                if record.get("op") == "capture" and record.get("state") == "succeeded" and "result" in record:
                    report = json.loads(record["result"]).get("reportJobId")
                    if report:
                        self.track([report])


def progress_line(snapshot: Snapshot, retries: int, restarts: int, elapsed: float) -> str:
    """One line of progress for stderr."""
    states = snapshot.states()
    settled = states["succeeded"] + states["dead"]
    return (
        f"settled {settled}/{len(snapshot.records)}  succeeded {states['succeeded']}  dead-lettered {states['dead']}  "
        f"deferred {states['deferred']}  running {states['running']}  queued {states['queued']}  "
        f"retries {retries}  worker restarts {restarts}  {elapsed:.0f}s"
    )


@dataclass
class Summary:
    """What a demo run did, for the report at the end."""

    trips: int
    elapsed: float
    snapshot: Snapshot
    retries: list[tuple[str, str]]
    dead_letters: list[DeadLetter]
    restarts: dict[str, int] = field(default_factory=dict)
    events_error: str | None = None

    @classmethod
    def gather(cls, trips: int, elapsed: float, snapshot: Snapshot, events: RetryEvents, dead_letters: DeadLetterStore,
               restarts: dict[str, int]) -> Summary:
        """Collect the run's figures: retries from the events, dead letters from the store."""
        dead_ids = [job_id for job_id, record in snapshot.records.items() if record.get("state") == "dead"]
        entries = [entry for entry in (dead_letters.get(job_id) for job_id in dead_ids) if entry is not None]
        # a shared Redis may carry other runs' jobs: keep this run's retries only
        retries = [(job_id, reason) for job_id, reason in events.retries() if job_id in snapshot.records]
        return cls(trips, elapsed, snapshot, retries, entries, restarts, events.error)

    def succeeded_by_operation(self) -> Counter[str]:
        """Succeeded jobs per operation."""
        return Counter(r.get("op", "?") for r in self.snapshot.records.values() if r.get("state") == "succeeded")

    def retried_jobs(self) -> set[str]:
        """Jobs that were retried at least once: seen in an event, or that needed more than one API call."""
        seen = {job_id for job_id, _ in self.retries}
        seen |= {job_id for job_id, r in self.snapshot.records.items() if int(r.get("attempts", 0) or 0) > 1}
        return seen

    def unsettled(self) -> dict[str, str]:
        """Job id -> state, for jobs that had not settled when the run ended."""
        return {job_id: r.get("state", "queued") for job_id, r in self.snapshot.records.items() if r.get("state") not in SETTLED}

    def render(self) -> str:
        """The summary as printed: succeeded, retried and why, dead-lettered and why."""
        states = self.snapshot.states()
        total = len(self.snapshot.records)
        unsettled = self.unsettled()
        head = f"all {total} settled" if not unsettled else f"{total - len(unsettled)} of {total} settled, {len(unsettled)} NOT settled"
        lines = [f"payq demo: {self.trips} trips, {total} jobs, {head} in {self.elapsed:.1f}s", ""]
        by_op = self.succeeded_by_operation()
        detail = ", ".join(f"{by_op[op]} {label}" for op, label in OPERATION_LABELS.items() if by_op[op])
        lines.append(f"  succeeded      {states['succeeded']:>4}   {detail}")
        causes = Counter(retry_cause(reason) for _, reason in self.retries)
        lines.append(f"  retried        {len(self.retried_jobs()):>4}   jobs, {len(self.retries)} retries in all:")
        for cause, n in causes.most_common():
            lines.append(f"                 {n:>4}   {cause}")
        if self.events_error:
            lines.append(f"                        (retry reasons unavailable: {self.events_error})")
        lines.append(f"  dead-lettered  {states['dead']:>4}   jobs:")
        groups: dict[str, list[DeadLetter]] = {}
        for entry in self.dead_letters:
            status = f" (HTTP {entry.status})" if entry.status else ""
            groups.setdefault(f"{entry.reason}{status}", []).append(entry)
        for label, entries in sorted(groups.items(), key=lambda item: -len(item[1])):
            lines.append(f"                 {len(entries):>4}   {label}: {entries[0].error}")
            shown = ", ".join(e.id for e in entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
            lines.append(f"                        {shown}")
        if unsettled:
            lines.append(f"  not settled    {len(unsettled):>4}   " + ", ".join(f"{k} ({v})" for k, v in list(unsettled.items())[:5]))
        restarts = ", ".join(f"{name} {n}" for name, n in self.restarts.items() if n) or "none"
        lines.append(f"  restarts             {restarts}")
        return "\n".join(lines)
