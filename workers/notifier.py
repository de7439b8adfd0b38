"""The delivery loop inside every worker: outcome notifications from the outbox stream to the receiver.

A thread of ``celery worker`` (a bootstep, like the housekeeping), so a
notification costs the workers one HTTP POST and a share of a few Redis
round trips, not a Celery message of its own. It reads new entries as one
consumer of the outbox's group (``XREADGROUP``), only as many as it has free
delivery slots (:func:`tasks.notify.delivery_slots` threads over kept-alive
connections), settles the finished ones in one round trip per loop, puts due
retries back on the stream, and claims what a dead consumer left pending. A
Retry-After from the receiver pauses every worker's deliveries until then
(the ``notify`` pause, as an API endpoint's is). It never touches a job's
thread: a receiver that hangs holds at most these few threads.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis
from celery import bootsteps

from payapi.operations import Operation
from payapi.outcomes import Failure
from tasks.deadletters import DeadLetter
from tasks.delivery import Delivered, GiveUp, Step, next_step
from tasks.notify import Notifier
from tasks.outbox import Entry, Outbox
from tasks.runtime import Runtime, RuntimeHolder
from tasks.states import DeadLetterReason

log = logging.getLogger("payq.notify")
BLOCK_MS = 500           # longest wait for a new entry: how late a stop or a settle of the last deliveries may be
CHECK_EVERY = 0.5        # seconds between looks at the receiver's pause and at due retries
CLAIM_EVERY = 5.0        # seconds between looks for entries a dead consumer left pending
DUE_BATCH = 200          # retries put back on the stream per look


class DeliveryLoop(threading.Thread):
    """Delivers outbox entries with ``notifier``'s slots until stopped."""

    def __init__(self, holder: RuntimeHolder, consumer: str | None = None) -> None:
        super().__init__(name="payq-notifier", daemon=True)
        self._holder = holder
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self._stop_event = threading.Event()
        self._done: list[tuple[Entry, Step]] = []  # finished deliveries, settled by the loop in one round trip
        self._lock = threading.Lock()
        self._in_flight = 0

    def stop(self) -> None:
        """Ask the loop to finish its deliveries under way (their timeouts at most) and wait for it."""
        self._stop_event.set()
        self.join(timeout=15)

    def run(self) -> None:
        """Loop until stopped, riding out Redis outages."""
        rt = self._holder.get()
        if rt.notifier is None:
            return
        outbox = Outbox(rt.redis)
        with ThreadPoolExecutor(rt.notifier.slots, thread_name_prefix="payq-notify") as pool:
            while not self._stop_event.is_set():
                try:
                    outbox.ensure_group()
                    self._loop(rt, rt.notifier, outbox, pool)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    log.warning("notifier: Redis unavailable (%s); retrying", exc)
                    self._stop_event.wait(1.0)
                except Exception:
                    log.exception("notifier: unexpected error; retrying")
                    self._stop_event.wait(1.0)
            while self._in_flight:  # the deliveries under way end within their timeouts; settle them
                time.sleep(0.05)
            self._settle(rt, outbox)

    def _loop(self, rt: Runtime, notifier: Notifier, outbox: Outbox, pool: ThreadPoolExecutor) -> None:
        next_check = next_claim = 0.0
        paused_until = 0.0
        while not self._stop_event.is_set():
            self._settle(rt, outbox)
            now = time.time()
            if time.monotonic() >= next_check:
                paused_until = rt.jobs.pauses([Operation.NOTIFY]).get(Operation.NOTIFY, 0.0)
                outbox.move_due(now, DUE_BATCH)
                next_check = time.monotonic() + CHECK_EVERY
            if paused_until > now:  # the receiver asked for quiet (Retry-After): every worker waits it out
                self._stop_event.wait(min(paused_until - now, CHECK_EVERY))
                continue
            free = notifier.slots - self._in_flight
            if free <= 0:
                self._stop_event.wait(0.005)
                continue
            entries: list[Entry] = []
            if time.monotonic() >= next_claim:
                entries = outbox.claim(self.consumer, free)
                if entries:
                    log.warning("notifier: delivering %d notifications a stopped worker left undelivered", len(entries))
                outbox.forget_gone_consumers()
                next_claim = time.monotonic() + CLAIM_EVERY
            if not entries:
                # block only when nothing is under way, so that finished deliveries are settled promptly
                entries = outbox.read(self.consumer, free, BLOCK_MS if self._in_flight == 0 else 1)
            for entry in entries:
                with self._lock:
                    self._in_flight += 1
                pool.submit(self._deliver, rt, notifier, entry).add_done_callback(_log_crash)

    def _deliver(self, rt: Runtime, notifier: Notifier, entry: Entry) -> None:
        """POST one entry and note what to do with it (in a delivery thread)."""
        try:
            outcome = notifier.deliver(entry.event_id, entry.body, "")
            s = rt.settings
            step = next_step(outcome, entry.failed + 1, s.notify_max_attempts, time.time(), s.retry_after_floor, s.retry_after_cap,
                             rt.rng.random)
            with self._lock:
                self._done.append((entry, step))
        finally:
            with self._lock:
                self._in_flight -= 1

    def _settle(self, rt: Runtime, outbox: Outbox) -> None:
        """Write what the finished deliveries came to: pauses, dead letters, then acknowledgements and retries in one round trip."""
        with self._lock:
            done, self._done = self._done, []
        if not done:
            return
        now = time.time()
        retry_at: dict[str, float] = {}
        for entry, step in done:
            if isinstance(step, Delivered):
                continue
            if step.pause_until is not None:
                rt.jobs.pause(Operation.NOTIFY, step.pause_until, now)
            if isinstance(step, GiveUp):
                self._dead_letter(rt, entry, step.failure, now)  # before the acknowledgement: a crash between delivers it again
            else:
                retry_at[entry.entry_id] = step.until
        outbox.settle([entry for entry, _ in done], retry_at)

    def _dead_letter(self, rt: Runtime, entry: Entry, failure: Failure, now: float) -> None:
        rt.dead_letters.add(DeadLetter.of(
            failure, id=f"notify:{entry.event_id}", operation=Operation.NOTIFY, task="outbox", kwargs=_event(entry),
            reason=DeadLetterReason.NOTIFY_FAILED, attempts=entry.failed + 1, first_attempt_at=entry.at, last_attempt_at=now,
            dead_at=now, worker=self.consumer,
        ))
        log.warning("notification %s dead-lettered after %d attempts: %s", entry.event_id, entry.failed + 1, failure.describe())


def _event(entry: Entry) -> dict[str, Any]:
    """The event as the dead letter keeps it (its ``kwargs``): what a replay sends again."""
    event: dict[str, Any] = json.loads(entry.body)
    return event


def _log_crash(future: Future[None]) -> None:
    if (exc := future.exception()) is not None:
        log.error("notifier: a delivery failed unexpectedly: %r", exc)


class NotifierStep(bootsteps.StartStopStep):
    """Starts the delivery loop with the worker (when notifications are on) and stops it with the worker."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.loop: DeliveryLoop | None = None

    def start(self, parent: Any) -> None:
        """Start the delivery thread."""
        holder: RuntimeHolder = parent.app.payq_runtime
        if holder.settings.notify_url is None:
            return
        self.loop = DeliveryLoop(holder)
        self.loop.start()

    def stop(self, parent: Any) -> None:
        """Stop the delivery thread."""
        if self.loop is not None:
            self.loop.stop()
            self.loop = None
