"""The Celery app: ``celery -A workers.app worker`` runs payq's jobs and its deferred-job mover.

This module is an entry point, so it reads the settings from the environment
once, here; everything below it takes them as an argument.
"""

from __future__ import annotations

from celery import Celery

from config.celery import celery_config
from config.settings import Settings
from tasks.payments import register
from workers.deferred import DeferredMoverStep
from workers.runtime import RuntimeHolder


def create_app(settings: Settings) -> Celery:
    """A configured payq Celery app with its tasks and the mover bootstep."""
    app = Celery("payq")
    app.conf.update(celery_config(settings))
    holder = RuntimeHolder(settings)
    app.payq_runtime = holder
    register(app, holder)
    app.steps["worker"].add(DeferredMoverStep)
    return app


app = create_app(Settings())
