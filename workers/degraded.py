"""A worker process's degraded state: a state, not a loop.

When a worker cannot go on (Redis does not answer, or fewer replicas are in
sync than ``PAYQ_REDIS_MIN_REPLICAS``), it takes no work: its transport
fetches nothing (``workers/redis_transport.py`` asks :meth:`Degraded.may_fetch`),
jobs it already holds wait before they begin, and nothing is rejected and
requeued in a loop. Its heartbeat looks at Redis again about once a second
(:meth:`Degraded.saw`); a worker takes no work before its first look. When
it can go on without a replica (the floor is 0), it goes on, degraded. Either way the state is logged on entering it, once a
minute while it lasts and on leaving it, one line each, without a traceback;
the threads that meet Redis's faults report them here instead of logging
each one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

import redis
from celery.exceptions import Reject

from payapi.errors import NotReplicated
from tasks.redis.replicas import ReplicaState, Sighting

log = logging.getLogger("payq.degraded")
REMIND_EVERY = 60.0  # seconds between the lines that say a degraded state still lasts


class Trouble(StrEnum):
    """Why a worker is degraded."""

    REDIS_AWAY = "redis-away"  # Redis does not answer: no work is taken
    BELOW_FLOOR = "below-floor"  # fewer replicas in sync than PAYQ_REDIS_MIN_REPLICAS: no work is taken
    LONE_PRIMARY = "lone-primary"  # no replica in sync, and the floor is 0: work goes on with the primary alone

    @property
    def stops_work(self) -> bool:
        """Whether the worker takes no work while it lasts."""
        return self is not Trouble.LONE_PRIMARY


_SAYS = {
    Trouble.REDIS_AWAY: "Redis does not answer; taking no work, looking again every second",
    Trouble.BELOW_FLOOR: "too few Redis replicas in sync; taking no work, looking again every second",
    Trouble.LONE_PRIMARY: "no Redis replica in sync; going on with the primary alone, whose writes a failover would lose",
}


def trouble_after(seen: Sighting | None, fault: BaseException | None) -> Trouble | None:
    """What a look at Redis means: its fault, or what its replicas say (None: nothing wrong)."""
    if isinstance(fault, redis.ConnectionError | redis.TimeoutError):
        return Trouble.REDIS_AWAY
    if isinstance(fault, NotReplicated):
        return Trouble.BELOW_FLOOR
    if seen is None:
        return None
    return {ReplicaState.SAFE: None, ReplicaState.DEGRADED: Trouble.LONE_PRIMARY, ReplicaState.REFUSING: Trouble.BELOW_FLOOR}[seen.state]


class Degraded:
    """This process's degraded state, shared by its threads: entered on a fault, left when a look finds Redis well."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._trouble: Trouble | None = None
        self._detail = ""
        self._since = 0.0
        self._said_at = 0.0
        self._working = threading.Event()  # set by the first look that finds Redis well
        self._stopping = threading.Event()

    @property
    def trouble(self) -> Trouble | None:
        """Why the worker is degraded now (None: it is not)."""
        return self._trouble

    def may_fetch(self) -> bool:
        """Whether the worker takes work now."""
        return self._working.is_set()

    def wait_to_work(self, look_every: float = 1.0) -> bool:
        """Block while the worker takes no work; False if it is shutting down meanwhile."""
        while not self._working.wait(look_every):
            if self._stopping.is_set():
                return False
        return True

    def fault(self, exc: BaseException) -> None:
        """A Redis step met ``exc`` (a connection fault, too few replicas): enter the state it means."""
        trouble = trouble_after(None, exc)
        if trouble is not None:
            self._enter(trouble, str(exc))

    def saw(self, seen: Sighting) -> None:
        """A look at Redis answered with ``seen``: leave the state, or enter what its replicas mean."""
        trouble = trouble_after(seen, None)
        if trouble is None:
            self._leave()
        else:
            self._enter(trouble, seen.describe())

    def remind(self) -> None:
        """Say once a minute that a degraded state still lasts."""
        with self._lock:
            now = self._clock()
            if self._trouble is None or now - self._said_at < REMIND_EVERY:
                return
            self._said_at = now
            trouble, detail, lasted = self._trouble, self._detail, now - self._since
        log.warning("degraded for %s: %s (%s)", _duration(lasted), _SAYS[trouble], detail)

    def stop(self) -> None:
        """The worker is shutting down: jobs waiting to work give up (their messages go back to their queues)."""
        self._stopping.set()

    def _enter(self, trouble: Trouble, detail: str) -> None:
        with self._lock:
            if self._trouble is trouble:
                self._detail = detail
                return
            now = self._clock()
            if self._trouble is None:
                self._since = now
            self._trouble, self._detail, self._said_at = trouble, detail, now
            if trouble.stops_work:
                self._working.clear()
            else:
                self._working.set()
        log.warning("degraded: %s (%s)", _SAYS[trouble], detail)

    def _leave(self) -> None:
        with self._lock:
            self._working.set()
            if self._trouble is None:
                return
            trouble, lasted = self._trouble, self._clock() - self._since
            self._trouble = None
            self._working.set()
        log.warning("no longer degraded after %s (%s): taking work as before", _duration(lasted), trouble.value)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class DropRejectReport(logging.Filter):
    """Celery logs a task's ``Reject`` at WARNING with its traceback; payq's own line already says why the message was requeued."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (dropped) for Celery's report of a rejected task."""
        return not (record.exc_info and isinstance(record.exc_info[1], Reject))


class DropConnectionLossLecture(logging.Filter):
    """Celery's warning, at every lost broker connection, that a future version will cancel running tasks then."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (dropped) for that warning."""
        return "worker_cancel_long_running_tasks_on_connection_loss" not in record.getMessage()


class DropReconnectAttempts(logging.Filter):
    """Celery's three lines at every failed attempt to reach the broker again: the degraded state says it once a minute."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (dropped) for a failed reconnection attempt."""
        return not str(record.msg).startswith("consumer: Cannot connect to")


def quiet_expected_reports() -> None:
    """Drop, in this process, what Celery says of an expected condition that payq says in one line: a requeued task, a lost broker.

    Celery reports a rejected task with its traceback; on every lost broker
    connection it warns, in seven lines, that a future version will cancel
    running tasks then (payq keeps them running: their outcomes wait out
    Redis); and it reports every failed attempt to connect again in three
    more. Its one line saying the connection was lost stays.
    """
    logging.getLogger("celery.app.trace").addFilter(DropRejectReport())
    logging.getLogger("celery.worker.consumer.consumer").addFilter(DropReconnectAttempts())
    # Celery turns its pending-deprecation warnings on as it sets up logging, after anything set here: filtered as a log record
    logging.getLogger("py.warnings").addFilter(DropConnectionLossLecture())
