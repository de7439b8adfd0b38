"""Celery's configuration for payq, derived from :class:`config.settings.Settings`.

Each reliability setting is chosen on purpose; the comment says why. The
queues and routes come from the caller (the table of operations), so this
module knows nothing above ``config``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kombu.entity import Queue

from config.redis_address import sentinel_client_options
from config.settings import Settings

# Seconds on top of the cutoff below for a busy machine and clocks of different hosts.
LOST_MARGIN = 10


def lost_after(settings: Settings) -> int:
    """Seconds a queued job may go untouched, its queue empty, before the sweep takes its message for lost (``revive_lost``).

    The task time limit + the lease + 10 s: 63 s with the defaults, and the
    sweep looks every 10 s, so a message lost between kombu's pop and BEGIN
    (a worker killed in between: kombu keeps no copy in Redis, see
    ``workers/redis_transport.py``) runs again within 73 s of its queue
    emptying. With prefetch 1 a worker holds no more messages than threads, so
    a message waits only milliseconds between its pop and BEGIN. Running jobs
    are not this sweep's business: a running job has a lease, and the lease
    sweep gives it back within about a lease of its holder's death
    (``tasks.store.leases``). Why this cutoff:

    - A queued job whose queue is empty may still have its message in a live
      worker's hands, fetched but not yet begun: prefetched, waiting for a
      thread (at most the task time limit, the longest a job holds one), or
      in a worker stopped for up to a lease (after which its leases lapse
      anyway). Past both, the message is gone.
    - A copy is harmless anyway. BEGIN gives a copy of a running job the
      verdict ``held`` while the holder's lease stands (the copy calls
      nothing), and a copy of a finished or deferred job finds it so.
    """
    return int(settings.task_time_limit + settings.lease_seconds + LOST_MARGIN)


def sentinel_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's Sentinel transport options for a ``sentinel://`` URL (none for one server).

    The primary's service name, and how to talk to the Sentinels themselves
    (the URL's own password is the primary's).
    """
    if not settings.uses_sentinel:
        return {}
    password = settings.redis_sentinel_password
    return {
        "master_name": settings.redis_sentinel_master,
        "sentinel_kwargs": sentinel_client_options(password.get_secret_value() if password is not None else None),
    }


def celery_config(settings: Settings, queues: Sequence[str], routes: Mapping[str, str]) -> dict[str, Any]:
    """The ``app.conf`` mapping for a payq worker; ``routes`` maps each task name to its queue (the first queue is the default)."""
    return {
        "broker_url": settings.redis_url,
        "broker_transport_options": {
            **sentinel_transport_options(settings),
            # No visibility timeout and no unacknowledged set: payq's transport runs
            # kombu with its ack emulation off (workers/redis_transport.py says why
            # and what protects a dead worker's messages instead).
            # kombu's pool defaults to 10; many threads overflowing it made the worker
            # restore (and so re-run) messages. One per thread, plus room.
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
        # Each pool slot holds one job: a reserved-but-idle message is what a
        # killed worker strands until the lost-message sweep, so keep none spare.
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
        # ``task-sent`` (tasks/jobs/messages.py, published by the enqueue scripts) shows queued jobs.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        # Bounds a job under the prefork pool (the threads pool does not enforce it;
        # the HTTP timeouts bound a job there).
        "task_time_limit": settings.task_time_limit,
        # On SIGTERM, let running jobs finish (a cold stop would leave them to
        # their leases' lapse) for up to this long before stopping.
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
