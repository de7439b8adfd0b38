"""The intake's Redis side, asynchronous: enqueue with the producer's script, read a job's and a trip's views.

The same script as :class:`tasks.store.records.JobStore` (``tasks/store/lua/enqueue.lua``,
all or nothing per call, up to :data:`~tasks.store.records.ENQUEUE_CHUNK` jobs a
call), called on the application's asynchronous client so the event loop never
waits on Redis; the same views as ``payq job --json`` and ``payq trip --json``
(:mod:`payq.views`), read the way those commands read them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import redis
import redis.asyncio as aioredis

from config.settings import Settings, redact_url
from payapi.errors import BrokerUnavailable
from payq.views import job_view, report_job_id, trip_job_ids, trip_view
from tasks import tracing
from tasks.jobs import settled
from tasks.jobs.books import read_books
from tasks.jobs.messages import sent_event_channel_of
from tasks.producer import enqueue_attributes
from tasks.redis import keys, scripts
from tasks.redis.connection import replicas
from tasks.redis.memory import warning_from
from tasks.redis.patience import Patience
from tasks.redis.replicas import Sighting
from tasks.store.backlog import count_args
from tasks.store.deadletters import DeadLetter
from tasks.store.records import ENQUEUE_CHUNK, Enqueued, NewJob, enqueue_call, read_enqueue_reply

T = TypeVar("T")
_DAY = 86400


async def patiently(settings: Settings, patience: Patience, action: Callable[[], Awaitable[T]]) -> T:
    """Run ``action`` within the request's ``patience``; Redis still unreachable at its end is :class:`BrokerUnavailable`.

    Only connection faults are waited out (a command Redis refused is not a reason to wait).
    """
    try:
        return await patience.call_async(action)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BrokerUnavailable(f"cannot reach Redis at {redact_url(settings.redis_url)}: {exc}") from None


class IntakeJobs:
    """Enqueue jobs and read their views through one asynchronous Redis client."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._redis = client
        self._settings = settings
        self._ttl = int(settings.job_retention_days * _DAY)
        self._books_ttl = int(settings.trip_books_retention_days * _DAY)
        self._events = sent_event_channel_of(client)
        self._enqueue = client.register_script(scripts.source("enqueue"))
        self._count_backlog = client.register_script(scripts.source("backlog_count"))
        self._replicas = replicas(settings)

    async def memory_warning(self) -> str | None:
        """Whether Redis is near its maxmemory (tasks/redis/memory.py): the warning /readyz shows, or None."""
        return warning_from(await self._redis.info("memory"))

    def patience(self) -> Patience:
        """One request's patience with an unreachable Redis: ``redis_retry_seconds``, as the producer's."""
        return Patience.of(self._settings.redis_retry_seconds)

    async def replicas(self) -> Sighting:
        """The replicas in sync now, as the enqueues' confirmations see them (read now: it proves Redis answers)."""
        return await self._replicas.look_async(self._redis, again=True)

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Record and publish each job unless it has a record already; what became of each, in order.

        As :meth:`tasks.store.records.JobStore.enqueue`: all or nothing as far
        as the trips' rules go, up to :data:`ENQUEUE_CHUNK` jobs in one script;
        a larger batch is checked whole first (a dry run of the same script),
        then written a chunk at a time; a job whose id holds a different job is
        refused on its own. Raises :class:`~tasks.jobs.books.TripRuleViolation`
        (nothing written), :class:`BrokerUnavailable` or :class:`~payapi.errors.NotReplicated`.
        """
        now = time.time()
        patience = self.patience()
        with tracing.span("payq.enqueue", tracing.Kind.PRODUCER, attributes=enqueue_attributes(jobs)):
            traceparent = tracing.current_traceparent()  # the enqueue's (or the store backend's): the jobs' trace
            if len(jobs) > ENQUEUE_CHUNK:
                read_enqueue_reply(await self._call(patience, jobs, now, dry_run=True), jobs)
            done: list[Enqueued] = []
            for start in range(0, len(jobs), ENQUEUE_CHUNK):
                chunk = jobs[start : start + ENQUEUE_CHUNK]
                done += read_enqueue_reply(await self._call(patience, chunk, now, dry_run=False, traceparent=traceparent), chunk,
                                           offset=start)
            return done

    async def open_jobs(self, stores: Sequence[str]) -> dict[str, int]:
        """How many jobs each of ``stores`` has open now (:mod:`tasks.store.backlog`)."""
        names = list(dict.fromkeys(stores))

        async def count() -> list[Any]:
            reply: list[Any] = await self._count_backlog(keys=[], args=count_args(names))
            return reply

        counts = await patiently(self._settings, self.patience(), count)
        return {store: int(n) for store, n in zip(names, counts, strict=True)}

    async def _call(self, patience: Patience, jobs: Sequence[NewJob], now: float, *, dry_run: bool, traceparent: str = "") -> list[Any]:
        call_keys, args = enqueue_call(jobs, now, self._ttl, self._events, dry_run=dry_run, traceparent=traceparent,
                                       books_ttl=self._books_ttl)

        async def run() -> list[Any]:
            reply: list[Any] = await self._enqueue(keys=call_keys, args=args)
            if not dry_run:
                await self._replicas.confirm_async(self._redis)
            return reply

        # a retry after the script ran but its answer was lost finds the records: the jobs read as not new, never twice
        return await patiently(self._settings, patience, run)

    async def job(self, job_id: str) -> dict[str, Any] | None:
        """What ``payq job ID --json`` prints, or None if there is no such job."""

        async def read() -> tuple[dict[str, str], bool, list[str]]:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.job(job_id))
                pipe.hexists(keys.DEAD_LETTERS, job_id)
                pipe.lrange(keys.deferrals(job_id), 0, -1)
                record, in_dead_letters, deferrals = await pipe.execute()
            return record, bool(in_dead_letters), deferrals

        record, in_dead_letters, deferrals = await patiently(self._settings, self.patience(), read)
        if not record:
            return None
        return job_view(job_id, settled.expand(job_id, record), in_dead_letters, [json.loads(item) for item in deferrals])

    async def trip(self, store_id: str, trip_id: str) -> dict[str, Any] | None:
        """What ``payq trip STORE_ID TRIP_ID --json`` prints, or None if payq has no jobs for the trip."""

        async def read() -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, DeadLetter]]:
            books = read_books(store_id, trip_id, cast(dict[str, str], await self._redis.hgetall(keys.trip(store_id, trip_id))))
            if not books:
                return books, {}, {}
            records = await self._records(trip_job_ids(books))
            report = report_job_id(books, records)
            if report:
                records.update(await self._records([report]))
            entries: dict[str, DeadLetter] = {}
            if records:
                raw = await self._redis.hmget(keys.DEAD_LETTERS, list(records))
                entries = {job_id: DeadLetter.model_validate_json(text) for job_id, text in zip(records, raw, strict=True) if text}
            return books, records, entries

        books, records, entries = await patiently(self._settings, self.patience(), read)
        if not books:
            return None
        return trip_view(store_id, trip_id, books, records, entries)

    async def _records(self, job_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The records of ``job_ids`` that exist, in one round trip (as :meth:`tasks.store.records.JobStore.records`)."""
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(keys.job(job_id))
            found = await pipe.execute()
        return {job_id: settled.expand(job_id, record) for job_id, record in zip(ids, found, strict=True) if record}
