"""The Celery app: ``celery -A workers.app worker`` runs payq's jobs and its housekeeping (the deferred-job mover).

This module is an entry point, so it reads the settings from the environment
once, here; everything below it takes them as an argument.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from celery import Celery, bootsteps
from celery.signals import worker_process_init, worker_process_shutdown

from config.celery import celery_config
from config.settings import InvalidSettings, Settings, load_settings
from payapi.errors import ConfigurationError
from payapi.operations import OPERATIONS, QUEUES
from payapi.signing import signer_factory
from tasks import tracing
from workers import heartbeat, pool_option, redis_transport
from workers.degraded import quiet_expected_reports
from workers.delivery import DeliveryStep
from workers.housekeeping import HousekeepingStep
from workers.payments import register
from workers.runtime import RuntimeHolder

log = logging.getLogger("payq.worker")


class StartupCheckStep(bootsteps.Step):
    """Builds the worker's runtime, and so its SigV4 signer, before the pool or any job starts.

    Missing or expired credentials then stop ``celery worker`` with one
    readable line and exit status 78 (EX_CONFIG, which a supervisor can be
    told not to restart on), instead of dead-lettering every job it takes.
    It runs while the blueprint is applied, so nothing has started that
    would need stopping; a prefork child builds its own runtime again.
    """

    name = "payq-startup-check"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        try:
            parent.app.payq_runtime.get()
        except ConfigurationError as exc:
            log.critical("payq worker cannot start: %s", exc)
            raise SystemExit(os.EX_CONFIG) from None


def create_app(settings: Settings) -> Celery:
    """A configured payq Celery app with its tasks, the mover bootstep and the start-up check."""
    pool_option.install()  # `celery worker -P prefork` beats app.conf.worker_pool, as any other -P does
    quiet_expected_reports()  # a requeued message is one line of payq's, not Celery's traceback too
    app = Celery("payq")
    app.conf.update(celery_config(settings, QUEUES, {spec.task: spec.queue for spec in OPERATIONS.values()}))
    # with api_auth=sigv4 each process resolves its AWS credentials once, when it builds its runtime
    holder = RuntimeHolder(settings, signer_factory=signer_factory(settings))
    app.payq_runtime = holder
    # payq's transport: kombu's Redis transport, with one client per pool instead of one per ack and event, fetching for
    # this process into in-flight lists named after it, and only while it takes work
    redis_transport.install(holder)
    register(app, holder)
    app.steps["worker"].add(StartupCheckStep)
    app.steps["worker"].add(HousekeepingStep)
    # a prefork child runs jobs in a process of its own: it beats for them itself
    worker_process_init.connect(lambda **_: heartbeat.start(holder), weak=False, dispatch_uid="payq-heartbeat")
    # a prefork child leaves without running atexit: the spans it still buffers are exported first
    worker_process_shutdown.connect(lambda **_: tracing.flush(), weak=False, dispatch_uid="payq-tracing-flush")
    app.steps["worker"].add(DeliveryStep)  # delivers outcome notifications from the outbox
    return app


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except InvalidSettings as exc:
        # a worker, Flower or a supervisor importing this module gets one line per bad variable, not a traceback
        for problem in exc.problems:
            print(f"payq cannot start: invalid configuration: {problem}", file=sys.stderr)
        raise SystemExit(os.EX_CONFIG) from None


app = create_app(_settings_or_exit())
