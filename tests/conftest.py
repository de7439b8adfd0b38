"""Fixtures shared by the end-to-end tiers: a private Redis, the sandbox, real workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from config.settings import Settings
from tasks.producer import Producer
from tests.support.redis_server import RedisServer
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server per test process; tests that share it flush it (``redis_url``)."""
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The private Redis, emptied for this test."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def e2e_sandbox_process() -> Iterator[SandboxProcess]:
    """A sandbox that accepts any trip (``--auto-register``), shared by the job tests of one process."""
    with SandboxProcess("--auto-register") as process:
        yield process


@pytest.fixture
def api(e2e_sandbox_process: SandboxProcess) -> SandboxProcess:
    """The auto-registering sandbox with an empty ledger, log and fault script."""
    e2e_sandbox_process.reset()
    return e2e_sandbox_process


@pytest.fixture
def settings(redis_url: str, api: SandboxProcess) -> Settings:
    """Settings pointing at the private Redis and the sandbox, for in-test producers."""
    return Settings(redis_url=redis_url, api_base_url=api.url, redis_retry_seconds=0.5)


@pytest.fixture
def producer(settings: Settings) -> Producer:
    """A producer on the private Redis."""
    return Producer(settings)


@pytest.fixture
def start_worker(redis_url: str, api: SandboxProcess) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real workers on the private Redis and the sandbox; all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(**kwargs: object) -> WorkerProcess:
        worker = WorkerProcess(redis_url, api.url, **kwargs)  # type: ignore[arg-type]
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
        worker.log_path.unlink(missing_ok=True)
