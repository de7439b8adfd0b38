"""Each worker process's heartbeat: a thread of its own that says the process is alive, renews its jobs' leases, and looks at Redis.

It never waits behind an API call: the job threads only add to and take from
the process's :class:`tasks.store.leases.Holdings`. A worker that stops beating (killed,
stopped, cut off from Redis) loses its jobs' leases a lease later, and the
housekeeping of any live worker gives those jobs back (``workers/housekeeping.py``).
Before each beat it looks at Redis's replicas, which is how the process finds
it may take work, or may again (:mod:`workers.degraded`): about once a second
while it is degraded. Under the prefork pool each child beats and looks for
itself (its own id and jobs). Its first beat also counts the process's start
(``payq_worker_starts_total``), so workers that keep restarting show as a rate.
"""

from __future__ import annotations

import logging
import threading

import redis

from tasks.redis import keys
from tasks.store.leases import beat_every
from workers.runtime import RuntimeHolder

log = logging.getLogger("payq.heartbeat")
LOOK_AGAIN = 1.0  # seconds between looks at Redis while degraded: work goes on within about this of Redis's return


class Heartbeat(threading.Thread):
    """Beats every fifth of a lease, as long as the process lives."""

    def __init__(self, holder: RuntimeHolder) -> None:
        super().__init__(name="payq-heartbeat", daemon=True)
        self._holder = holder
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Loop: look at Redis, then beat, renewing the leases of the jobs this process holds."""
        every = beat_every(self._holder.settings.lease_seconds)
        counted = False
        while not self._stop_event.is_set():
            rt = self._holder.get()  # builds, connecting nothing: Redis is asked below
            troubled = rt.degraded.trouble is not None
            try:
                rt.degraded.saw(rt.replicas.look(rt.redis, again=troubled))
                rt.leases.beat(rt.holdings.worker, rt.holdings.items())
                if not counted:
                    rt.redis.incr(keys.WORKER_STARTS)
                    counted = True
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                rt.degraded.fault(exc)  # said once by the process's degraded state, not at every beat
            except Exception:
                log.exception("heartbeat: unexpected error; retrying")
            rt.degraded.remind()
            self._stop_event.wait(min(every, LOOK_AGAIN) if rt.degraded.trouble is not None else every)


def start(holder: RuntimeHolder) -> Heartbeat:
    """Start this process's heartbeat."""
    beat = Heartbeat(holder)
    beat.start()
    return beat
