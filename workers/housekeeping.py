"""Housekeeping inside every worker: one thread, the :class:`Housekeeper`, does all of it.

It runs as a thread of ``celery worker`` (a bootstep, with the process's
heartbeat), so a worker host needs no beat or extra process. Every
``deferred_poll_interval`` it puts due deferred jobs back on their queues; any
number of housekeepers may run at once, and each move is an atomic script that
only the one removing the job from the set performs; not while the worker
takes no work (:mod:`workers.degraded`). Every second it gives back the jobs of holders that are gone:
what a dead worker had fetched, begun or not, and running jobs whose holder's
lease lapsed (the holder died, stopped or was cut off: see
:mod:`tasks.store.leases` and :mod:`tasks.store.inflight`). Every 10 s it
forgets held refunds whose record has expired and workers gone a day, and
trims dead letters past their retention.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import bootsteps

from workers import heartbeat
from workers.runtime import Runtime, RuntimeHolder

log = logging.getLogger("payq.housekeeping")
HOUSEKEEPING_EVERY = 10.0  # seconds between looks for expired waiting refunds, gone workers and old dead letters
RECOVER_EVERY = 1.0  # seconds between looks for gone holders: a dead worker's jobs back within a lease + this


class Housekeeper(threading.Thread):
    """Until stopped: moves due deferred jobs, looks at Redis, gives back gone holders' jobs, trims dead letters."""

    def __init__(self, holder: RuntimeHolder) -> None:
        super().__init__(name="payq-housekeeping", daemon=True)
        self._holder = holder
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the loop to finish and wait for it."""
        self._stop_event.set()
        self.join(timeout=5)

    def run(self) -> None:
        """Loop: move what is due (a full batch means more may be due, so go again at once); while degraded, only give back."""
        settings = self._holder.settings
        next_housekeeping = next_recovery = 0.0
        while not self._stop_event.is_set():
            wait = settings.deferred_poll_interval
            rt = self._holder.get()  # builds, connecting nothing: Redis is asked below
            try:
                if time.monotonic() >= next_recovery:
                    self._recover(rt)
                    next_recovery = time.monotonic() + RECOVER_EVERY
                if not rt.degraded.may_fetch():
                    wait = max(0.0, next_recovery - time.monotonic())
                else:
                    moved = rt.jobs.move_due(time.time(), settings.deferred_batch_size)
                    if moved:
                        log.debug("moved %d due deferred jobs", moved)
                    if moved >= settings.deferred_batch_size:
                        wait = 0
                    if time.monotonic() >= next_housekeeping:
                        rt.jobs.forget_expired_waiting(settings.deferred_batch_size)
                        rt.leases.forget_gone(rt.leases.now())
                        trimmed = rt.dead_letters.trim(time.time())
                        if trimmed:
                            log.warning("trimmed %d dead letters older than %g days", trimmed, settings.dead_letter_retention_days)
                        next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                rt.degraded.fault(exc)  # said once by the process's degraded state, not at every look
                wait = max(0.0, next_recovery - time.monotonic())
            except Exception:
                log.exception("housekeeping: unexpected error; retrying")
                wait = 1.0
            self._stop_event.wait(wait)

    def _recover(self, rt: Runtime) -> None:
        """Give back the jobs of holders that are gone (only once this process has beaten steadily for a lease)."""
        given = rt.jobs.recover(rt.holdings.worker, rt.settings.lease_seconds, rt.leases.now(), rt.settings.deferred_batch_size)
        if given is not None and given.fetched:
            log.warning("put back %d messages a dead worker had fetched and not begun", given.fetched)
        if given is not None and given.lapsed:
            log.warning("gave back %d jobs whose holder's lease lapsed (its worker died, stopped or was cut off)", given.lapsed)


class HousekeepingStep(bootsteps.StartStopStep):
    """Starts the process's heartbeat and the housekeeper with the worker; stops the housekeeper with it.

    The heartbeat beats as long as the process lives (a daemon thread): stopped
    with the housekeeper, it would let the leases of jobs still finishing in a warm
    shutdown lapse, and another worker would call for them again.
    """

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.housekeeper: Housekeeper | None = None
        self.heartbeat: heartbeat.Heartbeat | None = None

    def start(self, parent: Any) -> None:
        """Start the heartbeat (once per process), then the housekeeper."""
        if self.heartbeat is None:
            self.heartbeat = heartbeat.start(parent.app.payq_runtime)
        self.housekeeper = Housekeeper(parent.app.payq_runtime)
        self.housekeeper.start()

    def stop(self, parent: Any) -> None:
        """Stop the housekeeper; jobs still waiting to work give up (their messages go back to their queues)."""
        parent.app.payq_runtime.get().degraded.stop()
        if self.housekeeper is not None:
            self.housekeeper.stop()
            self.housekeeper = None
