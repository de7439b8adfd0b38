"""Job records in Redis, and the atomic steps that move a job through its states.

A job record (``payq:job:<id>``, a hash) is also the job's idempotency key: a
job id that has a record is never published again by ``enqueue``. The states
are :class:`tasks.states.JobState`. Each step that must not be half-done is
one script in ``tasks/store/lua/`` (or one MULTI); the record's fields:

    op, kwargs            what to run (the wire fields, with the idempotency key)
    state                 queued / running / deferred / succeeded / dead
    attempts              API calls made (waiting out a pause or the pace makes none)
    deferred_until, defer while deferred: when it runs again, and why (JSON of :class:`Deferral`)
    failure               the latest failure (JSON of :class:`payapi.outcomes.Failure`)
    reason                while dead: the dead-letter reason
    result, settled_at    a success's result; when a capture settled (its report's id derives from it)
    worker, delivery      which Celery worker runs it, and which message (its delivery tag), for people
    holder, claim         the worker process that holds it (its heartbeat's id) and the delivery's claim;
                          its lease is in ``payq:leases`` (see :mod:`tasks.store.leases`). An outcome is written
                          only under the claim
    recovered_from, recoveries   the holder whose lease lapsed last, and how often the job was given back
    traceparent           the job's trace context, fixed at enqueue (:mod:`tasks.tracing`); every message published
                          for the job carries it. A record written before it existed has none: each delivery of its
                          job is then a trace of its own

A job that succeeded keeps less, compacted in the step that records it
(``lua/lib/settle.lua``, :mod:`tasks.jobs.settled`): state, attempts, when
(enqueued_at, last_attempt_at, updated_at; settled_at), and its wire fields and
result leaf by leaf (``in.<path>``, ``out.<path>``) but those its id says;
:meth:`JobStore.get` and :meth:`JobStore.records` read it back whole. It is
kept ``retention_seconds`` from the settling; the trip's books
``books_retention_seconds``, past the refund window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, cast

import redis

from payapi.errors import FieldDifference, JobConflict
from payapi.operations import OPERATIONS, QUEUES, Operation
from tasks import tracing
from tasks.jobs import settled
from tasks.jobs.books import BOOKS_RETENTION_SECONDS, REFUND_WINDOW_SECONDS, TripRuleViolation, breach_from, cents, read_books
from tasks.jobs.deferral import Deferral, failure_json
from tasks.jobs.messages import WireKwargs, build_message, message_of, sent_event_channel_of, sent_event_of
from tasks.jobs.resend import stored_differences
from tasks.notify.events import Event
from tasks.notify.outbox import event_args
from tasks.pacing.pacer import count_call
from tasks.redis import keys, scripts
from tasks.states import Verdict
from tasks.store.backlog import CALLS_WINDOW

# Why a job waited, kept per job for `payq job` and the demo's summary; only the latest few.
_DEFERRALS_KEPT = 20


@dataclass(frozen=True)
class NewJob:
    """A validated job ready to publish: ``kwargs`` is its JSON form with the wire field names."""

    operation: Operation
    job_id: str
    kwargs: dict[str, Any]

    @cached_property
    def written(self) -> WireKwargs:
        """Its kwargs as its record and message write them: encoded once, though a large batch's check and write both need them."""
        return WireKwargs.of(self.kwargs)


@dataclass(frozen=True)
class Begin:
    """What a worker found when it picked a job up: a :class:`Verdict`, the attempt it claimed, and a time.

    ``until`` is the job's turn at its endpoint's pace (``RUN``: call then;
    ``PACED``: wait for it in the deferred set), the end of the endpoint's
    pause (``PAUSED``), the settle time of a capture that already
    succeeded (``SETTLED``), or the end of another holder's lease (``HELD``;
    None when it lapsed but this worker may not judge that yet).
    """

    verdict: Verdict
    attempts: int
    until: float | None
    recorded: str | None = None  # DIFFERS: the job's kwargs as recorded (JSON)


@dataclass(frozen=True)
class Recovered:
    """What one sweep gave back: running jobs whose lease lapsed, and messages dead workers had fetched and not begun."""

    lapsed: int
    fetched: int


@dataclass(frozen=True)
class Call:
    """One API call to count: its endpoint, the HTTP status it got (None: no response), when it ended, and when it was sent.

    A success is counted by the tenth of a second it was sent in (the pace's measure: :func:`tasks.pacing.rules.measure`).
    """

    operation: Operation
    status: int | None
    at: float
    sent_at: float



@dataclass(frozen=True)
class Enqueued:
    """What enqueueing one job did: ``created`` it, or found it on record; ``differences`` when the one on record is another job.

    A job with differences was refused (nothing of it written): its id holds a
    different job (:class:`~payapi.errors.JobConflict` names each field).
    """

    job: NewJob
    created: bool
    differences: tuple[FieldDifference, ...] = ()

    @property
    def conflict(self) -> bool:
        """Whether the id holds a different job, so this one was refused."""
        return bool(self.differences)


def conflicts(results: Sequence[Enqueued], *, in_batch: bool) -> JobConflict | None:
    """The error naming every refused job's differing fields (by ``index`` ``in_batch``), or None when no job conflicted."""
    found = [d if in_batch else replace(d, index=None) for result in results for d in result.differences]
    return JobConflict(found) if found else None


ENQUEUE_CHUNK = 500  # jobs per enqueue script: a few milliseconds of Redis's time, so other clients barely wait


def enqueue_call(
    jobs: Sequence[NewJob], now: float, ttl: int, events_channel: str, *, dry_run: bool, traceparent: str = "",
    books_ttl: int = BOOKS_RETENTION_SECONDS,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of ``tasks/store/lua/enqueue.lua`` for ``jobs`` (a dry run leaves the messages out: it only checks).

    ``ttl``: seconds a job's record is kept; ``books_ttl``: seconds a trip's books are; ``traceparent``: the trace
    context the jobs keep on their records and messages ('': none).
    """
    args: list[Any] = [now, ttl, events_channel, "1" if dry_run else "0", REFUND_WINDOW_SECONDS, books_ttl]
    for job in jobs:
        spec = OPERATIONS[job.operation]
        store, trip = job.kwargs.get("storeId", ""), job.kwargs.get("shoppingTripId", "")
        booked = job.operation in (Operation.CAPTURE, Operation.CANCEL, Operation.REFUND)
        amount = job.kwargs.get("amount") or {}
        written = job.written
        args += [
            job.job_id, keys.job(job.job_id), job.operation, spec.queue,
            "" if dry_run else message_of(job.operation, job.job_id, written, traceparent),
            written.json,  # a dry run too: a job sent again is compared with the one on record
            "" if dry_run else sent_event_of(job.operation, job.job_id, written, now),
            keys.trip(store, trip) if booked else "", keys.held(store, trip) if booked else "",
            cents(amount["amount"]) if "amount" in amount else 0, amount.get("code", ""), keys.backlog(store), store, traceparent,
        ]
    return [keys.ACTIVE, keys.WAITING, keys.BACKLOG_STORES], args


def read_enqueue_reply(reply: list[Any], jobs: Sequence[NewJob], offset: int = 0) -> list[Enqueued]:
    """What the enqueue script did with each job; :class:`TripRuleViolation` if it refused them all.

    A job found on record with kwargs written differently is compared here
    (:func:`tasks.jobs.resend.stored_differences`) against what the script read
    in the same step: the same job (``19.990`` for ``19.99``) or a conflicting one.
    """
    if int(reply[0]) == 1:
        if len(reply) == 1:
            return []  # a dry run that found no problem: it answers nothing per job
        return [_enqueued(job, answer, offset + i) for i, (job, answer) in enumerate(zip(jobs, reply[1:], strict=True))]
    breaches = []
    for problem in reply[1:]:
        job = jobs[int(problem[0]) - 1]
        breach = breach_from(problem, str(job.kwargs.get("storeId", "")), str(job.kwargs.get("shoppingTripId", "")))
        breaches.append(replace(breach, index=breach.index - 1 + offset))
    raise TripRuleViolation(breaches)


def _enqueued(job: NewJob, answer: Any, index: int) -> Enqueued:
    if isinstance(answer, int):
        return Enqueued(job, created=bool(answer))
    if isinstance(answer, list):  # a settled record, its fields flat: its kwargs are read back from them
        flat = [item.decode() if isinstance(item, bytes) else str(item) for item in answer]
        kwargs = settled.expand(job.job_id, dict(zip(flat[::2], flat[1::2], strict=True))).get("kwargs")
        if kwargs is None:
            return Enqueued(job, created=False)
        return Enqueued(job, created=False, differences=tuple(stored_differences(job.operation, job.job_id, kwargs, job.kwargs, index)))
    stored = answer.decode() if isinstance(answer, bytes) else str(answer)
    return Enqueued(job, created=False, differences=tuple(stored_differences(job.operation, job.job_id, stored, job.kwargs, index)))


class JobStore:
    """Job records, publishing, the deferred set and endpoint pauses: the Redis side of a job's life."""

    def __init__(self, client: redis.Redis, retention_seconds: int, books_retention_seconds: int = BOOKS_RETENTION_SECONDS) -> None:
        self._redis = client
        self._ttl = retention_seconds
        self._books_ttl = books_retention_seconds
        self._events = sent_event_channel_of(client)
        self._enqueue = scripts.register(client, "enqueue")
        self._begin = scripts.register(client, "begin")
        self._move = scripts.register(client, "move_due")
        self._finish_capture = scripts.register(client, "finish_capture")
        self._defer = scripts.register(client, "defer")
        self._succeed = scripts.register(client, "succeed")
        self._recover = scripts.register(client, "recover")

    # --- publishing -------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], now: float | None = None) -> list[Enqueued]:
        """Record and publish each job unless its id already has a record; what became of each, in order.

        All or none: if any job breaks its trip's rules (:mod:`tasks.jobs.books`),
        :class:`~tasks.jobs.books.TripRuleViolation` names each and nothing is
        written. A job whose id holds a different job is refused on its own
        (:attr:`Enqueued.differences`); the others are enqueued. Up to
        :data:`ENQUEUE_CHUNK` jobs are checked and written in one script; a
        larger batch is checked whole first (a dry run of the same script),
        then written a chunk at a time.
        """
        now = now if now is not None else time.time()
        batch = list(jobs)
        traceparent = tracing.current_traceparent()
        if len(batch) > ENQUEUE_CHUNK:
            self.check(batch, now)
        done: list[Enqueued] = []
        for start in range(0, len(batch), ENQUEUE_CHUNK):
            chunk = batch[start : start + ENQUEUE_CHUNK]
            call_keys, args = enqueue_call(chunk, now, self._ttl, self._events, dry_run=False, traceparent=traceparent,
                                           books_ttl=self._books_ttl)
            done += read_enqueue_reply(self._enqueue(keys=call_keys, args=args), chunk, offset=start)
        return done

    def check(self, jobs: Sequence[NewJob], now: float | None = None) -> None:
        """Raise :class:`~tasks.jobs.books.TripRuleViolation` if any of ``jobs``, enqueued in this order, would break a trip's rules."""
        batch = list(jobs)
        call_keys, args = enqueue_call(batch, time.time() if now is None else now, self._ttl, self._events, dry_run=True,
                                       books_ttl=self._books_ttl)
        read_enqueue_reply(self._enqueue(keys=call_keys, args=args), batch)

    # --- a worker's steps ---------------------------------------------------

    def begin(
        self, job_id: str, operation: Operation, worker: str, now: float, delivery: str, lease: float,
        pace: float | None = None, wait_in_place: float = 0.0, *, holder: str = "", claim: str = "", store: str = "",
        fair_horizon: float = 0.0, kwargs: str = "", weights: Mapping[str, float] | None = None, store_cap: float = 0.0,
    ) -> Begin:
        """Claim an attempt, unless the job is finished, deferred, its endpoint paused, its turn not near, or another worker holds it.

        ``holder`` (a worker process's heartbeat id) claims the job under
        ``claim`` for a lease of ``lease`` seconds, which its heartbeat renews;
        a copy of a running job, whatever its delivery tag, gets ``HELD``
        while the holder's lease stands (:func:`tasks.store.leases.copy_verdict`).
        ``worker`` and ``delivery`` (its tag) are kept for people. ``pace``
        (calls per second, None: unpaced) gives the job a turn at its endpoint,
        shared by every worker; a turn more than ``wait_in_place`` seconds away
        is kept on the record (``pace_turn``) for when the job comes back.
        ``UNRECORDED``, nothing written: payq has no record of a job under
        ``job_id`` (a message that came around payq's doors, :mod:`tasks.jobs.admission`).
        With ``fair_horizon`` (seconds, 0: first come, first served) the turns
        are shared between stores (``store``: the job's storeId), and a job whose
        store has had its share gets ``QUEUED``: ask again at its ``until``
        (:mod:`tasks.pacing.fairness`), each store's share its weight in ``weights``
        (``PAYQ_STORE_LIMITS``; 1 for a store not named) over the waiting stores'. ``store_cap`` (calls a
        second, 0: none) caps the store's calls at the endpoint, paced or not: past it the job gets ``QUEUED``
        (:func:`tasks.pacing.fairness.cap_wait`). With ``kwargs`` (the message's
        kwargs as :func:`payapi.wire.job_json` writes them) a job whose recorded kwargs differ gets ``DIFFERS``
        with them, nothing claimed.
        """
        verdict, attempts, until, *recorded = self._begin(
            keys=[keys.job(job_id), keys.DEFERRED, keys.pause(operation), keys.ACTIVE, keys.pace(operation), keys.LEASES,
                  keys.WORKERS, keys.WORKERS_STEADY, keys.fair_clocks(operation), keys.fair_waiting(operation),
                  keys.store_calls(int(now // CALLS_WINDOW))],
            args=[job_id, now, worker, delivery, lease, pace or 0, wait_in_place, holder, claim, store, fair_horizon, operation,
                  kwargs, store_cap, *(item for pair in (weights or {}).items() for item in pair)],
        )
        return Begin(Verdict(verdict), int(attempts), float(until) if until else None, *recorded)

    def defer(
        self, job_id: str, deferral: Deferral, now: float, call: Call | None = None, *, release_attempt: bool = False, claim: str = "",
    ) -> bool:
        """Park the job in the deferred set until ``deferral.until``; the mover publishes it again then.

        ``call``: the API call that led here, counted in the same step (even if refused).
        ``release_attempt``: give back the attempt BEGIN claimed, which made no call (a turn lost to a late wake).
        ``claim``: the delivery's claim ('': it claimed nothing). False, nothing written, if another worker holds the job.
        """
        history = json.dumps({"at": now, **json.loads(deferral.to_json())})
        successes, field = _call_args(call)
        return bool(self._defer(
            keys=[keys.job(job_id), keys.DEFERRED, keys.ACTIVE, keys.deferrals(job_id), keys.LEASES, keys.API_CALLS],
            args=[successes, job_id, claim, now, deferral.until, deferral.to_json(),
                  failure_json(deferral.failure) if deferral.failure is not None else "", history, _DEFERRALS_KEPT, self._ttl,
                  field, "1" if release_attempt else "0"],
        ))

    def finish_capture(
        self, job_id: str, settled_at: int, result: dict[str, Any], report: NewJob, now: float, call: Call | None = None,
        event: Event | None = None, claim: str = "", kwargs: dict[str, Any] | None = None, traceparent: str = "",
        attempt: int = 0,
    ) -> int | None:
        """Settle a capture at ``settled_at``, publish its ``report`` and mark it succeeded, in one script.

        Returns the settle time on record: ``settled_at``, or an earlier one, in
        which case nothing was written and the report for that time is the one
        to publish (call again with it). ``call``, the successful capture call,
        is counted in the same script; ``event``, the success's notification, is
        appended to the outbox in it. None, nothing written but the call's
        count, if the delivery's ``claim`` ('': none) lost the job to another worker.
        The record is compacted to what a settled job keeps (:mod:`tasks.jobs.settled`;
        ``kwargs``, the capture's wire fields, None: kept as written).
        ``traceparent``: the report's trace context, the capture's ('': none).
        """
        successes, field = _call_args(call)
        store, trip = str(report.kwargs["storeId"]), str(report.kwargs["shoppingTripId"])
        written = WireKwargs.of(report.kwargs)
        on_record = int(self._finish_capture(
            keys=[keys.job(job_id), keys.ACTIVE, keys.job(report.job_id), OPERATIONS[report.operation].queue, keys.API_CALLS,
                  successes or keys.API_CALLS, keys.trip(store, trip), keys.held(store, trip), keys.WAITING,
                  OPERATIONS[Operation.REFUND].queue, keys.LEASES],
            args=[job_id, now, settled_at, report.job_id,
                  message_of(report.operation, report.job_id, written, traceparent), written.json, self._ttl,
                  self._events, sent_event_of(report.operation, report.job_id, written, now), field, keys.JOB_PREFIX,
                  claim, self._books_ttl, *event_args(event), traceparent, attempt or "", store, keys.backlog(store),
                  *_settle_args(job_id, kwargs, result, str(settled_at))],
        ))
        return None if on_record < 0 else on_record

    def succeed(
        self, job_id: str, result: dict[str, Any], now: float, call: Call | None = None, event: Event | None = None,
        claim: str = "", kwargs: dict[str, Any] | None = None, attempt: int = 0,
    ) -> bool:
        """Mark the job succeeded with its result (e.g. a refund's reconciliationId), in one script.

        ``call`` is counted and ``event``, the success's notification, appended
        to the outbox in the same step. False, nothing written but the
        call's count, if the delivery's ``claim`` ('': none) lost the job to another worker.
        The record is compacted to what a settled job keeps (:mod:`tasks.jobs.settled`;
        ``kwargs``, the job's wire fields, None: kept as written). ``attempt``,
        the one the claim was made for: a job another attempt settled is lost
        to this delivery (a settled record keeps no claim; it keeps its attempts).
        """
        successes, field = _call_args(call)
        return bool(self._succeed(
            keys=[keys.job(job_id), keys.ACTIVE, keys.LEASES, keys.API_CALLS],
            args=[successes, job_id, claim, now, self._ttl, self._events, field, *event_args(event), attempt or "",
                  _backlog_of(kwargs), *_settle_args(job_id, kwargs, result)],
        ))

    def count(self, call: Call) -> None:
        """Count an API call on its own (its outcome is recorded elsewhere, e.g. in the dead-letter store)."""
        pipe = self._redis.pipeline(transaction=False)
        count_call(pipe, call.operation, call.status, call.sent_at)
        pipe.execute()


    # --- the deferred set ---------------------------------------------------

    def move_due(self, now: float, limit: int) -> int:
        """Publish up to ``limit`` deferred jobs that are due; returns how many left the set.

        Safe with any number of movers: a job is published by whichever script
        removes it from the set, and only that one. A job whose record is no
        longer ``deferred`` leaves the set without being published.
        """
        due = cast(list[str], self._redis.zrangebyscore(keys.DEFERRED, "-inf", now, start=0, num=limit))
        args = _script_args(self._load(due, keys.DEFERRED))
        return int(self._move(keys=[keys.DEFERRED, keys.ACTIVE], args=[now, *args])) if args else 0

    def recover(self, sweeper: str, lease: float, redis_now: float, limit: int) -> Recovered | None:
        """Give back the jobs of holders that are gone (``lua/recover.lua``); None, nothing done, unless ``sweeper`` is steady.

        Two kinds, judged at ``redis_now`` (Redis's clock): what a dead worker
        (its heartbeat a lease old) fetched, from its in-flight lists
        (:mod:`tasks.store.inflight`), whether it had begun it or not; and up to
        ``limit`` running jobs whose lease lapsed, whose holder kept no list
        with their message, each published again from its record. Either way
        a job goes to the head of its queue and its claim is cleared, so that a
        holder that resumes neither calls nor records an outcome. Only a
        *steady* sweeper judges (:func:`tasks.store.leases.steady`): right after
        Redis or this worker was away, lapsed leases prove nothing.
        """
        lapsed = cast(list[str], self._redis.zrangebyscore(keys.LEASES, "-inf", redis_now, start=0, num=limit))
        given, fetched = self._recover(
            keys=[keys.LEASES, keys.ACTIVE, keys.WORKERS, keys.WORKERS_STEADY, keys.RECOVERED, keys.INFLIGHT, *QUEUES],
            args=[sweeper, lease, time.time(), *_script_args(self._load(lapsed, keys.LEASES))])
        return None if int(given) < 0 else Recovered(int(given), int(fetched))

    def _load(self, job_ids: list[str], watched: str) -> list[_Stored]:
        """The records of ``job_ids``; a job whose record is gone leaves the ``watched`` set.

        A record vanishes only by retention (days) or by hand: nothing is left to rebuild its job from.
        """
        if not job_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "op", "kwargs", "state", "traceparent")
        jobs: list[_Stored] = []
        orphans: list[str] = []
        for job_id, (op, kwargs_json, state, traceparent) in zip(job_ids, pipe.execute(), strict=True):
            if op is None:
                orphans.append(job_id)
            else:
                jobs.append(_Stored(job_id, Operation(op), kwargs_json, state, traceparent or ""))
        if orphans:
            self._redis.zrem(watched, *orphans)
        return jobs

    # --- reading ------------------------------------------------------------

    def recorded(self, job_id: str) -> bool:
        """Whether payq recorded a job under ``job_id`` through its doors (as ``lua/begin.lua`` tells: its record has ``enqueued_at``)."""
        return bool(self._redis.hexists(keys.job(job_id), "enqueued_at"))

    def get(self, job_id: str) -> dict[str, str] | None:
        """The job's record as stored, or None."""
        record = cast(dict[str, str], self._redis.hgetall(keys.job(job_id)))
        return settled.expand(job_id, record) if record else None

    def books(self, store_id: str, trip_id: str) -> dict[str, str]:
        """A trip's books as stored (empty if payq never had a job for it, or they expired)."""
        return read_books(store_id, trip_id, cast(dict[str, str], self._redis.hgetall(keys.trip(store_id, trip_id))))

    def records(self, job_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """The records of ``job_ids`` that exist, in one round trip."""
        ids = list(dict.fromkeys(job_ids))
        pipe = self._redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(keys.job(job_id))
        return {job_id: settled.expand(job_id, record) for job_id, record in zip(ids, pipe.execute(), strict=True) if record}

    def waiting(self) -> int:
        """How many refunds wait for their trip's capture to succeed."""
        return int(self._redis.zcard(keys.WAITING))

    def forget_expired_waiting(self, limit: int) -> int:
        """Drop from the waiting set refunds whose record is gone (past the retention, its capture never settled); returns how many."""
        ids = cast(list[str], self._redis.zrange(keys.WAITING, 0, limit - 1))
        if not ids:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.exists(keys.job(job_id))
        gone = [job_id for job_id, exists in zip(ids, pipe.execute(), strict=True) if not exists]
        return int(self._redis.zrem(keys.WAITING, *gone)) if gone else 0

    def deferrals(self, job_id: str) -> list[dict[str, Any]]:
        """Why the job waited, oldest first (the latest few deferrals), as stored."""
        return [json.loads(item) for item in cast(list[str], self._redis.lrange(keys.deferrals(job_id), 0, -1))]



@dataclass(frozen=True)
class _Stored:
    """What republishing a job needs from its record."""

    job_id: str
    operation: Operation
    kwargs_json: str
    state: str | None
    traceparent: str = ""  # '' on a record written before traces were kept


def _script_args(jobs: Iterable[_Stored]) -> list[Any]:
    """(id, job key, queue, message) per job, flattened, as the move and recover scripts take them."""
    args: list[Any] = []
    for job in jobs:
        message = build_message(job.operation, job.job_id, json.loads(job.kwargs_json), job.traceparent)
        args += [job.job_id, keys.job(job.job_id), OPERATIONS[job.operation].queue, message]
    return args


def _settle_args(job_id: str, kwargs: dict[str, Any] | None, result: dict[str, Any], settled_at: str | None = None) -> list[str]:
    """How the settling scripts compact a record (``lua/lib/settle.lua``), their last ARGV: how many fields go, their names, then name, value, ... kept.

    Plain arguments rather than JSON: decoding two JSON lists in every
    success was 3% of Redis's work per job.
    """
    dropped = settled.dropped(kwargs)
    return [str(len(dropped)), *dropped, *settled.compact(job_id, kwargs, result, settled_at)]


def _backlog_of(kwargs: dict[str, Any] | None) -> str:
    """The backlog set a job with wire fields ``kwargs`` joined at enqueue (as :func:`enqueue_call` names it); '' when they are not known."""
    return "" if kwargs is None else keys.backlog(str(kwargs.get("storeId", "")))


def _call_args(call: Call | None) -> tuple[str, str]:
    """How a script counts ``call``: its success bucket ('' unless it succeeded) and its ``<operation>:<status>`` ('' for no call)."""
    if call is None:
        return "", ""
    ok = call.status is not None and 200 <= call.status < 300
    successes = keys.successes(call.operation, int(call.sent_at * 10)) if ok else ""
    return successes, f"{call.operation.value}:{call.status if call.status is not None else 'none'}"
