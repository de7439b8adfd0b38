"""The fault suite's processes (a private Redis with the append-only file, sandboxes, workers) and its summary.

Who prints the summary:

- one process (no xdist), or xdist when this conftest is loaded in the
  controller too (``pytest -n 4 tests/faults``): ``pytest_terminal_summary``;
  the workers leave their figures in a run directory the controller named.
- xdist started from the repository root (``pytest -n 4``, as ``make test``
  does): the controller only loads conftests above and beside ``tests/``, not
  this one, so it has no hook to print with. The last worker to finish prints
  the block to its stderr, which xdist passes through to the pytest output,
  just before the final "N passed" line.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.report import Recorder, load, render, write_last_run
from tests.support.fault_redis import FaultRedis
from tests.support.fault_workers import FaultWorker
from tests.support.sandbox import SandboxProcess

_RUN_DIR_ENV = "FAULT_SUITE_RUN_DIR"  # not PAYQ_*: nothing of payq should read it
_RECORDER = Recorder()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config) and _RUN_DIR_ENV not in os.environ:
        # xdist starts its workers after this, and they inherit the environment
        os.environ[_RUN_DIR_ENV] = tempfile.mkdtemp(prefix="payq-faults-")


# xdist gives each worker two tests at a time, one running and one waiting behind it. The longest scenarios
# go first, each followed by a test of a second or less, so that nothing long waits behind something long.
LONGEST_FIRST = (
    "test_money.py::", "test_429_storm.py::", "test_redis_restart.py::",
    "test_killed_workers.py::test_a_backlog", "test_killed_workers.py::test_with_default_settings",
    "test_degraded.py::", "test_fetched_messages.py::", "test_secrets.py::",
    "test_one_owner.py::test_a_worker_stopped", "test_one_owner.py::test_a_job_deferred",
)


def _quick(item: pytest.Item) -> bool:
    # the once-crashing inputs at the end of the fuzz module: a second or less each
    return item.path.name == "test_fuzzed_input.py" and item.name.endswith("_is_a_validation_error")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if here in item.path.parents]
    mine = [items[i] for i in slots]
    longest = [next(it for it in mine if name in it.nodeid) for name in LONGEST_FIRST if any(name in it.nodeid for it in mine)]
    quick = [it for it in mine if _quick(it)]
    ordered: list[pytest.Item] = []
    for position, item in enumerate(longest):
        ordered.append(item)
        if position < len(quick):
            ordered.append(quick[position])
    ordered += [it for it in mine if it not in ordered]
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not _is_worker(config):
        return
    info: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
    controller_prints = _RUN_DIR_ENV in os.environ
    run_dir = Path(os.environ[_RUN_DIR_ENV]) if controller_prints else Path(tempfile.gettempdir()) / f"payq-faults-{info['testrunuid']}"
    run_dir.mkdir(exist_ok=True)
    _RECORDER.dump(run_dir / f"{info['workerid']}.json")
    if controller_prints or len(list(run_dir.glob("gw*.json"))) < int(info["workercount"]):
        return
    try:
        os.close(os.open(run_dir / "printed", os.O_CREAT | os.O_EXCL))  # one worker prints, even if two finish at once
    except FileExistsError:
        return
    figures = load(sorted(run_dir.glob("gw*.json")))
    if figures:
        print("\n" + render(figures), file=sys.__stderr__, flush=True)
        write_last_run(figures)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _is_worker(config):
        return
    figures = list(_RECORDER.figures) + load(sorted(Path(os.environ.get(_RUN_DIR_ENV, "/nonexistent")).glob("gw*.json")))
    if not figures:
        return
    terminalreporter.section("payq fault scenarios")
    for line in render(figures).splitlines()[1:]:
        terminalreporter.write_line(line)
    write_last_run(figures)


@pytest.fixture(scope="session")
def fault_report() -> Recorder:
    """Where each scenario records its figures for the summary."""
    return _RECORDER


@pytest.fixture
def private_redis() -> Iterator[FaultRedis]:
    """A redis-server of this test's own with the append-only file on (everysec), which the test may stop, kill and start."""
    server = FaultRedis()
    yield server
    server.close()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxProcess]]:
    """Start sandboxes with extra CLI arguments; all are stopped after the test."""
    started: list[SandboxProcess] = []

    def make(*args: str) -> SandboxProcess:
        process = SandboxProcess(*args, startup_timeout=60)  # a busy two-core machine can take its time
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


@pytest.fixture
def make_worker() -> Iterator[Callable[..., FaultWorker]]:
    """Start real workers (``FaultWorker(redis_url, api_url, ...)``); every one is killed after the test."""
    started: list[FaultWorker] = []

    def make(redis_url: str, api_url: str, **kwargs: Any) -> FaultWorker:
        worker = FaultWorker(redis_url, api_url, **kwargs)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.kill()
