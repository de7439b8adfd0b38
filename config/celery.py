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

# How long a delivery waits out Redis (a restart, a failover) for its steps, as one deadline
# (tasks/redis/patience.py): before its API call, to claim the job and check its claim still stands;
# then, the call made, the same deadline is extended to record the call's outcome. Giving up before the
# call costs nothing (the message goes back to its queue); giving up after it may send the call
# again, so the outcome gets the longer patience, and the job's lease is held meanwhile.
STEPS_PATIENCE = 30.0
OUTCOME_PATIENCE = 60.0


def task_time_limit(settings: Settings) -> int:
    """The longest a delivery may take: its steps' patience, the longest API call, and the outcome's patience (103 s with the defaults).

    Celery enforces it under the prefork pool (under threads the HTTP
    timeouts and the patience above bound a job): it must never stop a worker
    still recording the outcome of a call it made, which would send that call again.
    """
    return int(STEPS_PATIENCE + settings.call_seconds + OUTCOME_PATIENCE)


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
            # No visibility timeout and no unacknowledged hash: payq's transport moves
            # each message it fetches into the worker's own in-flight list, where it
            # stays until acknowledged (workers/redis_transport.py says why).
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
        # Each pool slot holds one job: a fetched message waits for a thread only
        # milliseconds, and a dead worker's fetched messages come back with its lease.
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
        # the HTTP timeouts and the patience bound a job there): see task_time_limit.
        "task_time_limit": task_time_limit(settings),
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
