"""Celery's configuration for payq, derived from :class:`config.settings.Settings`.

Each reliability setting is chosen on purpose; the comment says why. The
queues and routes come from the caller (the table of operations), so this
module knows nothing above ``config``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kombu.entity import Queue

from config.settings import Settings

# kombu looks for a killed worker's unacknowledged messages every this many seconds (see celery_config).
UNACKED_RESTORE_INTERVAL = 2
# ... under a lock in Redis that a worker killed while holding it keeps for this long.
UNACKED_MUTEX_EXPIRE = 30


def lost_after(settings: Settings) -> int:
    """Seconds a queued or running job may go untouched before the sweep takes its message for lost (``revive_lost``).

    The visibility timeout + 35 s: 95 s with the defaults, and the sweep looks
    every 10 s, so a message lost between kombu's pop and its unacked record
    runs again within 105 s of its worker's death. Why 35 s is enough:

    - The sweep should not copy a message kombu is about to restore. A running
      job's message was recorded as unacknowledged before BEGIN stamped the
      job, and kombu hands it back by the visibility timeout + one 2 s scan, or
      + 30 s more if the killed worker held kombu's scan lock: 32 s, plus 3 s
      for the scan itself and clocks of different hosts. (Exceptions: a dead
      worker's messages beyond the first 10 take one more scan per 10, and a
      worker can die between kombu's unacked record and BEGIN with a job that
      waited in its queue; there the sweep may come first.)
    - A copy is harmless anyway. It has a delivery tag of its own, and BEGIN
      runs it only if no other delivery began the job within the claim (the
      task time limit + 5 s, never more than the visibility timeout, which
      this cutoff exceeds): the copy and the restored message never call the
      API side by side, and whichever comes second finds the job finished,
      parked or held, and does nothing.
    - The task time limit needs no place here (the cutoff was the visibility
      timeout + the limit + 30 s: 133 s with these defaults). It is below the
      visibility timeout, and so is the longest API call (Settings refuses a
      configuration where it is not), so a job untouched for the visibility
      timeout is no longer running anywhere.
    """
    return settings.visibility_timeout + UNACKED_MUTEX_EXPIRE + UNACKED_RESTORE_INTERVAL + 3


def celery_config(settings: Settings, queues: Sequence[str], routes: Mapping[str, str]) -> dict[str, Any]:
    """The ``app.conf`` mapping for a payq worker; ``routes`` maps each task name to its queue (the first queue is the default)."""
    return {
        "broker_url": settings.redis_url,
        "broker_transport_options": {
            # A killed worker's unacknowledged jobs go back on their queue after
            # this long. Deferred jobs wait in payq's own sorted set, never as
            # Celery countdowns, so this can stay short: above the longest job
            # (HTTP timeouts), below what an operator would call "lost".
            "visibility_timeout": settings.visibility_timeout,
            # kombu looks for such messages every `interval` seconds but scans only on
            # every `throttle`-th look (10 x 10 by default: up to 100 s on top of the
            # timeout, measured). Scan on every look, every 2 s: one ZRANGE under a lock.
            "unacked_restore_interval": UNACKED_RESTORE_INTERVAL,
            "unacked_restore_throttle": 1,
            # the scan's lock expires after 300 s by default: a worker killed holding it
            # would stop every worker's scan that long
            "unacked_mutex_expire": UNACKED_MUTEX_EXPIRE,
            # kombu's pool defaults to 10; acks from many threads overflowing it
            # made the worker restore (and so re-run) messages. One per thread, plus room.
            "max_connections": settings.worker_concurrency * 2 + 10,
            "socket_timeout": 15,
            "socket_connect_timeout": 5,
            "health_check_interval": 25,
        },
        # A worker started before Redis keeps trying instead of exiting; the
        # supervisor would only start it again.
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # Acknowledge after the job ran, not when it was received: a worker that
        # dies mid-job leaves the message unacknowledged, and it runs again.
        "task_acks_late": True,
        # ... and the same when only the pool's child process dies.
        "task_reject_on_worker_lost": True,
        # A job that failed has already been written to the dead-letter store
        # (payq does that before raising), so acknowledging it loses nothing.
        "task_acks_on_failure_or_timeout": True,
        # Each pool slot holds one job: reserved-but-idle messages are what a
        # killed worker strands until the visibility timeout, so keep none spare.
        "worker_prefetch_multiplier": 1,
        # Results live in payq's job records (``payq job ID``); a result backend
        # would be a second, slower copy.
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Task events only while someone watches: Flower turns them on in every worker it
        # sees (its --enable-events, on by default, repeated every few seconds), and they
        # cost a message per job state otherwise published to no one. payq's own
        # ``task-sent`` (tasks/messages.py, published by the enqueue scripts) shows queued jobs.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        # No job may outlive the visibility timeout, or Redis hands it out twice.
        "task_time_limit": settings.task_time_limit,
        # On SIGTERM, let running jobs finish (a cold stop would leave them to
        # the visibility timeout) for up to this long before stopping.
        "worker_soft_shutdown_timeout": 15.0,
        "worker_enable_soft_shutdown_on_idle": True,
        # What a plain ``celery -A workers.app worker`` runs: without these it starts
        # Celery's prefork pool with one process per core, two API calls at a time on
        # two cores, where payq's measurements and defaults are threads x 32.
        # ``-P``/``-c`` on the command line still win (workers/pool_option.py).
        "worker_pool": settings.worker_pool,
        "worker_concurrency": settings.worker_concurrency,
        # Flower's worker pages and ``celery inspect`` need remote control.
        "worker_enable_remote_control": True,
        "task_queues": [Queue(name, routing_key=name) for name in queues],
        "task_routes": {task: {"queue": queue, "routing_key": queue} for task, queue in routes.items()},
        "task_default_queue": queues[0],
        "worker_hijack_root_logger": True,
        "worker_redirect_stdouts": False,
        "enable_utc": True,
    }
