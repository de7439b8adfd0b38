"""An operation's queue, endpoint path and task name, read from the table of operations (for tests that name them)."""

from __future__ import annotations

from payapi.operations import OPERATIONS, Operation, api_path


def queue_of(operation: str) -> str:
    """The Redis list ``operation``'s jobs wait on."""
    return OPERATIONS[Operation(operation)].queue


def path_of(operation: str) -> str:
    """The API path ``operation`` is POSTed to."""
    return api_path(Operation(operation))


def task_of(operation: str) -> str:
    """The Celery task name that runs ``operation``."""
    return OPERATIONS[Operation(operation)].task
