"""``celery worker -P``: a pool named on the command line wins over the app's ``worker_pool``, ``-P prefork`` too.

payq sets ``worker_pool`` from ``PAYQ_WORKER_POOL`` so that a plain
``celery -A workers.app worker`` runs the pool payq is measured with. Celery
5.7 honours it only through a guess: its ``--pool`` option defaults to
``prefork``, so it takes any ``prefork`` for "not given" and replaces it with
the configured pool, and an explicit ``-P prefork`` silently ran threads
(seen: the banner said ``32 (thread)``). click knows where a value came from;
:func:`install` makes the option ask it.
"""

from __future__ import annotations

from typing import Any

import click
from celery import concurrency
from celery.bin import worker as worker_command
from click.core import ParameterSource


class PoolOption(worker_command.WorkersPool):  # type: ignore[misc]
    """Celery's ``--pool`` type, keeping ``prefork`` when the command line or ``CELERY_WORKER_POOL`` asked for it."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The pool class: the one asked for, or without ``-P`` the app's ``worker_pool``."""
        if value == "prefork" and param is not None and param.name and ctx is not None:
            source = ctx.get_parameter_source(param.name)
            if source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
                return concurrency.get_implementation("prefork")
        return super().convert(value, param, ctx)


def install() -> None:
    """Give the ``celery worker`` command's ``--pool`` option :class:`PoolOption` (in this process; idempotent).

    ``workers/app.py`` calls it while ``-A workers.app`` is loaded, which
    click does before it parses the ``worker`` command's own options.
    """
    for param in worker_command.worker.params:
        if param.name == "pool" and not isinstance(param.type, PoolOption):
            param.type = PoolOption()
