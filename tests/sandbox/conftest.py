"""One sandbox process per test session (per xdist worker), cleared before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sandbox import SandboxProcess


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[SandboxProcess]:
    """The sandbox with --auto-register off: a trip must be registered before the API knows it."""
    with SandboxProcess() as process:
        yield process


@pytest.fixture
def sandbox(sandbox_process: SandboxProcess) -> SandboxProcess:
    """The shared sandbox with an empty ledger, no faults and an empty request log."""
    sandbox_process.reset()
    return sandbox_process
