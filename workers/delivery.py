"""The delivery threads inside every worker: outcome events from the outbox stream to the receiver.

Threads of ``celery worker`` (a bootstep, like the housekeeping), so an event
costs the workers one HTTP POST and a share of one Redis round trip, not a
Celery message of its own. Each of a process's delivery threads
(:func:`tasks.notify.client.delivery_slots`: one for the default 32 job threads) is
one consumer of the outbox's group: it waits for new entries (``XREADGROUP``,
up to :data:`BATCH` at a time), delivers them one after the other over a
kept-alive connection, and settles them in one script, sent in the round trip
that reads the next batch: acknowledged, then forgotten or kept for a retry.
After a batch that was not full it lingers :data:`LINGER` seconds, so the next
read carries several entries (a read and a settle cost more CPU than a POST;
measured: 0.10 ms of worker CPU per event, against 0.28 ms with two threads,
16 at most a read and two round trips a batch). The first thread also puts due
retries back on the stream and claims what a dead consumer left pending. A
Retry-After from the receiver pauses every worker's deliveries until then (the
``notify`` pause, as an API endpoint's is); the entries a thread had read but
not yet delivered go back to the retry set, due when the pause ends, and the
pause's end is looked for at once, so deliveries resume within
:data:`CHECK_EVERY`. No job's thread ever delivers: a receiver that hangs holds
these threads, nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import redis
from celery import bootsteps

from payapi.operations import Operation
from payapi.outcomes import Failure, Outcome, RetryAfter, Success
from tasks import tracing
from tasks.notify.client import WebhookClient, delivery_slots
from tasks.notify.outbox import CLAIM_IDLE, Entry, Outbox
from tasks.notify.schedule import FAN_OUT, Delivered, GiveUp, Step, TryLater, batch_size, held, next_step, posts_at_once
from tasks.redis import keys
from tasks.states import DeadLetterReason
from tasks.store.deadletters import DeadLetter
from workers.runtime import Runtime, RuntimeHolder

log = logging.getLogger("payq.notify")
BATCH = 64               # entries a thread takes at most at once: settled in one script, delivered one after the other
BLOCK_MS = 500           # longest wait for a new entry: how late a stop may be noticed
LINGER = 0.1             # seconds a thread waits after a batch that was not full, so the next read takes several entries
CHECK_EVERY = 0.5        # seconds between looks at the receiver's pause (every thread) and at due retries (the first)
CLAIM_EVERY = 5.0        # seconds between looks for entries a dead consumer left pending (the first thread)
DUE_BATCH = 200          # retries put back on the stream per look
QUIET_TOLD_EVERY = 60.0  # seconds between the lines saying the receiver still asks for quiet


class ReceiverQuiet:
    """The receiver's requests for quiet (Retry-After) as one state of a worker process's deliveries.

    Logged when it begins, once a minute while it lasts (however often the
    receiver asks again) and when a delivery succeeds again: a receiver that
    throttles for an hour writes about sixty lines, not one per answer.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # when the receiver first asked, this time
        self._told = 0.0
        self._asked = 0

    def asked(self, status: int | None, until: float) -> None:
        """The receiver answered ``status`` with a Retry-After: deliveries pause until ``until`` (epoch seconds)."""
        with self._lock:
            now = self._clock()
            self._asked += 1
            if self._since is None:
                self._since = self._told = now
                log.warning("delivery: the receiver asked for quiet (HTTP %s with Retry-After); deliveries paused until %s",
                            status, _clock_time(until))
            elif now - self._told >= QUIET_TOLD_EVERY:
                self._told = now
                log.warning("delivery: the receiver still asks for quiet (%d times in %.0f s); deliveries paused until %s",
                            self._asked, now - self._since, _clock_time(until))

    def delivered(self) -> None:
        """A delivery succeeded: the quiet, if there was one, is over."""
        if self._since is None:  # the usual case, without the lock
            return
        with self._lock:
            if self._since is not None:
                log.warning("delivery: the receiver takes deliveries again, after asking for quiet %d times in %.0f s",
                            self._asked, self._clock() - self._since)
                self._since, self._asked = None, 0


def _clock_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"


class DeliveryLoop(threading.Thread):
    """One consumer of the outbox: delivers what it reads until stopped; ``first`` also moves due retries and claims."""

    def __init__(self, holder: RuntimeHolder, consumer: str, *, first: bool = False, quiet: ReceiverQuiet | None = None) -> None:
        super().__init__(name=f"payq-delivery-{consumer.rsplit(':', 1)[-1]}", daemon=True)
        self._holder = holder
        self.consumer = consumer
        self._first = first
        self._quiet = quiet or ReceiverQuiet()
        self._stop_event = threading.Event()
        self._paused_until = 0.0
        self._next_check = self._next_claim = 0.0
        self._seconds_per_delivery = 0.0  # a moving average: how long the receiver takes
        self._done: list[tuple[Entry, Step]] = []  # delivered (or failed), not yet settled
        self._pool: ThreadPoolExecutor | None = None

    def stop(self) -> None:
        """Ask the loop to finish (after the deliveries under way, their timeouts at most)."""
        self._stop_event.set()

    def run(self) -> None:
        """Loop until stopped, riding out Redis outages."""
        rt = self._holder.get()
        client = rt.webhook
        if client is None:
            return
        outbox = Outbox(rt.redis)
        while not self._stop_event.is_set():
            try:
                outbox.ensure_group()
                self._loop(rt, client, outbox)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                rt.degraded.fault(exc)  # said once by the process's degraded state, not by every thread at every try
                self._stop_event.wait(1.0)
            except Exception:
                log.exception("delivery: unexpected error; retrying")
                self._stop_event.wait(1.0)

    def _loop(self, rt: Runtime, client: WebhookClient, outbox: Outbox) -> None:
        try:
            while not self._stop_event.is_set():
                if time.monotonic() >= self._next_check:
                    self._check(rt, outbox)
                if (wait := self._paused_until - time.time()) > 0:  # the receiver asked for quiet (Retry-After)
                    self._settle(outbox)
                    if not self._stop_event.wait(min(wait, CHECK_EVERY)) and self._paused_until <= time.time():
                        self._next_check = 0.0  # the pause is over: what waited for its end goes back on the stream now
                    continue
                entries: list[Entry] = []
                if self._first and time.monotonic() >= self._next_claim:
                    self._settle(outbox)
                    entries = outbox.claim(self.consumer, BATCH)
                    if entries:
                        log.warning("delivery: %d events a stopped worker left undelivered, delivering them", len(entries))
                    outbox.forget_gone_consumers()
                    self._next_claim = time.monotonic() + CLAIM_EVERY
                if not entries and self._done:  # what the last batch came to, written with the next read: one round trip
                    done, self._done = self._done, []
                    entries = outbox.settle_and_read(*_settlement(done), self.consumer, self._batch())
                if not entries:
                    entries = outbox.read(self.consumer, self._batch(), self._block_ms())
                if entries:
                    self._done = self._deliver(rt, client, entries)
                if 0 < len(entries) < BATCH:
                    # a read and a settle cost more than a POST: let the next few events gather (they wait LINGER at most)
                    self._stop_event.wait(LINGER)
        finally:
            self._settle(outbox)
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None

    def _check(self, rt: Runtime, outbox: Outbox) -> None:
        """Look at the receiver's pause (every worker's) and, on the first thread, put due retries back on the stream."""
        self._paused_until = rt.pacer.pauses([Operation.NOTIFY]).get(Operation.NOTIFY, 0.0)
        if self._first:
            outbox.move_due(time.time(), DUE_BATCH)
        self._next_check = time.monotonic() + CHECK_EVERY

    def _block_ms(self) -> int:
        """How long a read may wait for a new entry: :data:`BLOCK_MS`, and the first thread no later than its next look at due retries."""
        if not self._first:
            return BLOCK_MS
        return max(1, min(BLOCK_MS, int((self._next_check - time.monotonic()) * 1000)))

    def _settle(self, outbox: Outbox) -> None:
        """Write what the deliveries not yet settled came to."""
        if self._done:
            outbox.settle(*_settlement(self._done))
            self._done = []

    def _batch(self) -> int:
        """How many entries to read: :data:`BATCH`, fewer when deliveries are slow (:func:`tasks.notify.schedule.batch_size`)."""
        return batch_size(self._seconds_per_delivery, CLAIM_IDLE, BATCH)

    def _posting(self) -> ThreadPoolExecutor:
        """The threads that POST to a slow receiver several at once (:func:`tasks.notify.schedule.posts_at_once`), made on first need."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(FAN_OUT, thread_name_prefix=f"{self.name}-post")
        return self._pool

    def _deliver(self, rt: Runtime, client: WebhookClient, entries: list[Entry]) -> list[tuple[Entry, Step]]:
        """Deliver the entries, one after the other or several at once, and dead-letter those out of attempts; what each came to, to settle.

        An entry not begun once the receiver asked for quiet goes back to the
        retry set, due when the quiet ends, its record unchanged. One not
        begun within half the claim time of the read (a slow receiver) stays
        pending for a claim: delivered later, never while another consumer may take it.
        """
        read_at = time.monotonic()
        halt = threading.Event()  # a Retry-After came back: begin no more deliveries of this batch
        traces = _traceparents(rt, entries) if tracing.enabled() else None

        def post(entry: Entry) -> Outcome | None:
            if halt.is_set() or time.monotonic() - read_at > CLAIM_IDLE / 2 or self._paused_until > time.time():
                return None
            began = time.monotonic()
            outcome = client.deliver(entry.event_id, entry.body) if traces is None else _traced(client, entry, traces.get(entry.job_id, ""))
            self._seconds_per_delivery += (time.monotonic() - began - self._seconds_per_delivery) / 4
            if isinstance(outcome, RetryAfter):
                halt.set()
            return outcome

        answers: list[Outcome | None] = []
        rest = iter(entries)
        for entry in rest:  # one after the other while the receiver answers at once: the least CPU
            if posts_at_once(self._seconds_per_delivery) > 1:
                answers += self._posting().map(post, [entry, *rest])
                break
            answers.append(post(entry))
        done: list[tuple[Entry, Step]] = []
        unsent: list[Entry] = []
        s = rt.settings
        now = time.time()
        for entry, outcome in zip(entries, answers, strict=True):
            if outcome is None:
                unsent.append(entry)
                continue
            step = next_step(outcome, entry.failed, s.notify_max_attempts, entry.at, now, s.retry_after_floor, s.retry_after_cap,
                             rt.rng.random)
            done.append((entry, step))
            if isinstance(step, Delivered):
                self._quiet.delivered()
            elif step.pause_until is not None:
                rt.pacer.pause(Operation.NOTIFY, step.pause_until, now)
                self._paused_until = max(self._paused_until, step.pause_until)
                self._quiet.asked(step.failure.status if step.failure else None, step.pause_until)
        if self._paused_until > now:
            done += [(entry, held(entry.failed, self._paused_until)) for entry in unsent]
        for entry, step in done:
            if isinstance(step, GiveUp):
                self._dead_letter(rt, entry, step.failure, now)  # before the acknowledgement: a crash between delivers it again
        return done

    def _dead_letter(self, rt: Runtime, entry: Entry, failure: Failure, now: float) -> None:
        event: dict[str, Any] = json.loads(entry.body)  # what a replay sends again
        rt.dead_letters.add(DeadLetter.of(
            failure, id=f"notify:{entry.event_id}", operation=Operation.NOTIFY, task="outbox", kwargs=event,
            reason=DeadLetterReason.NOTIFY_FAILED, attempts=entry.failed + 1, first_attempt_at=entry.at, last_attempt_at=now,
            dead_at=now, worker=self.consumer,
        ))
        log.warning("delivery: event %s dead-lettered as notify-failed after %d deliveries: %s", entry.event_id, entry.failed + 1,
                    failure.describe())


def _traceparents(rt: Runtime, entries: list[Entry]) -> dict[str, str]:
    """The trace context of each entry's job, from its record, in one round trip (tracing on only): each delivery joins its job's trace."""
    job_ids = list(dict.fromkeys(entry.job_id for entry in entries if entry.job_id))
    if not job_ids:
        return {}
    pipe = rt.redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(keys.job(job_id), tracing.HEADER)
    found = pipe.execute()
    return {job_id: tracing.valid_traceparent(value) for job_id, value in zip(job_ids, found, strict=True) if value}


def _traced(client: WebhookClient, entry: Entry, parent: str) -> Outcome:
    """One delivery as its span in its job's trace (``parent``), its ``traceparent`` sent to the receiver."""
    with tracing.span("payq.notify", tracing.Kind.CLIENT, parent, {tracing.JOB_ID: entry.job_id, tracing.EVENT_ID: entry.event_id,
                                                                  tracing.ATTEMPT: entry.failed + 1}) as current:
        outcome = client.deliver(entry.event_id, entry.body, tracing.current_traceparent())
        status = outcome.status if isinstance(outcome, Success) else outcome.failure.status
        tracing.set_attributes(current, {tracing.OUTCOME: type(outcome).__name__, **({tracing.HTTP_STATUS: status} if status else {})})
        if not isinstance(outcome, Success):
            tracing.set_error(current, outcome.failure.kind.value)
        return outcome


def _settlement(done: list[tuple[Entry, Step]]) -> tuple[list[Entry], dict[str, TryLater]]:
    """:meth:`Outbox.settle`'s arguments for these deliveries: the entries, and those to deliver again (when, and with what record)."""
    return [entry for entry, _ in done], {entry.entry_id: step for entry, step in done if isinstance(step, TryLater)}


class DeliveryStep(bootsteps.StartStopStep):
    """Starts the delivery threads with the worker (when notifications are on) and stops them with the worker."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.loops: list[DeliveryLoop] = []

    def start(self, parent: Any) -> None:
        """Start one delivery thread per slot, each a consumer named after this process."""
        holder: RuntimeHolder = parent.app.payq_runtime
        if holder.settings.notify_url is None:
            return
        process = f"{socket.gethostname()}:{os.getpid()}"
        quiet = ReceiverQuiet()  # one state for the process, whichever of its threads the receiver answers
        self.loops = [DeliveryLoop(holder, f"{process}:{i}", first=i == 0, quiet=quiet) for i in range(delivery_slots(holder.settings))]
        for loop in self.loops:
            loop.start()

    def stop(self, parent: Any) -> None:
        """Stop the delivery threads and wait for them (what they hold when time is up stays pending, for a claim)."""
        for loop in self.loops:
            loop.stop()
        deadline = time.monotonic() + 15
        for loop in self.loops:
            loop.join(timeout=max(0.0, deadline - time.monotonic()))
        self.loops = []
