"""Fixtures for the operator-command tests: settings and a ``payq`` runner on the private Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from config.settings import Settings
from tests.support.payq_cli import Ran, invoke


@pytest.fixture
def op_settings(redis_url: str) -> Settings:
    """Settings on the private, flushed Redis (no sandbox needed)."""
    return Settings(redis_url=redis_url, redis_retry_seconds=0.3)


@pytest.fixture
def payq(redis_url: str) -> Callable[..., Ran]:
    """``payq(*args)`` runs the command in-process against the private Redis."""

    def run(*args: str, **env: str) -> Ran:
        return invoke(redis_url, *args, **env)

    return run
