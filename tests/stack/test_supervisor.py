"""The local stack's supervisor: restarts what dies, stops everything it started, and never leaves orphans."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from payq.stack.launcher import StackHandle
from payq.stack.supervisor import Probe, Service, StackError, StackSpec, Supervisor, read_state, restart_delay
from tests.stack.procs import alive, on_linux
from tests.support.polling import wait_for

# A child that says it is up, then waits to be stopped.
SLEEPER = "import time; print('up', flush=True); time.sleep(600)"
# A child with a grandchild in its process group (like a prefork worker's pool), whose pid it prints.
PARENT_OF_ONE = (
    "import subprocess, sys, time; "
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
    "print('grandchild', p.pid, flush=True); print('up', flush=True); time.sleep(600)"
)


def service(name: str, code: str = SLEEPER, **kwargs: object) -> Service:
    """A Python one-liner as a supervised service, ready once it prints ``up``."""
    return Service(name=name, argv=[sys.executable, "-c", code], ready=Probe(kind="log", target="up"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (50, 10.0)],
)
def test_restart_delay_doubles_from_half_a_second_up_to_ten(failures: int, delay: float) -> None:
    assert restart_delay(failures) == delay


def test_a_child_that_dies_is_started_again_and_the_restart_is_published(tmp_path: Path) -> None:
    supervisor = Supervisor(StackSpec(run_dir=tmp_path, services=[service("worker")]), say=lambda line: None)
    supervisor.start()
    try:
        child = supervisor.children[0]
        first = child.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)

        def restarted() -> bool:
            supervisor.check()
            return child.restarts == 1 and child.pid != first

        wait_for(restarted, timeout=15, what="the worker to be restarted")
        assert child.pid is not None and alive(child.pid)
        state = read_state(tmp_path)
        assert state is not None
        assert state["services"]["worker"] == {"pid": child.pid, "url": None, "restarts": 1, "log": str(tmp_path / "worker.log")}
    finally:
        supervisor.stop()


def test_stop_ends_each_childs_whole_process_group(tmp_path: Path) -> None:
    supervisor = Supervisor(StackSpec(run_dir=tmp_path, services=[service("pool", PARENT_OF_ONE)]), say=lambda line: None)
    supervisor.start()
    grandchild = int((tmp_path / "pool.log").read_text().split("grandchild ")[1].split()[0])
    assert alive(grandchild)

    supervisor.stop()

    wait_for(lambda: not alive(grandchild), timeout=10, what="the grandchild to be stopped")
    assert read_state(tmp_path)["phase"] == "stopped"  # type: ignore[index]


def test_a_service_that_exits_before_it_is_ready_fails_the_start_naming_it_and_quoting_its_log(tmp_path: Path) -> None:
    broken = service("sandbox", "print('cannot listen on 127.0.0.1:1: address in use'); raise SystemExit(3)")
    supervisor = Supervisor(StackSpec(run_dir=tmp_path, services=[service("redis"), broken]), say=lambda line: None)
    try:
        with pytest.raises(StackError, match=r"sandbox exited with 3 before it was ready:\n.*address in use"):
            supervisor.start()
    finally:
        supervisor.stop()
    assert not alive(supervisor.children[0].pid or 0)


def test_the_stack_stops_when_its_launcher_goes_away(tmp_path: Path) -> None:
    handle = StackHandle.launch(StackSpec(run_dir=tmp_path / "run", services=[service("a"), service("b")]))
    state = handle.wait_ready(30)
    pids = [s["pid"] for s in state["services"].values()]
    assert all(alive(pid) for pid in pids)
    assert handle.process.stdin is not None

    handle.process.stdin.close()  # what the launcher's exit does, however it exits

    assert handle.process.wait(30) == 0
    assert not any(alive(pid) for pid in pids)
    assert not (tmp_path / "run").exists(), "a clean stop removes the run directory"


def test_a_detached_stack_outlives_its_pipe_and_stops_on_sigterm(tmp_path: Path) -> None:
    handle = StackHandle.launch(StackSpec(run_dir=tmp_path / "run", services=[service("a")], detached=True))
    try:
        pid = handle.wait_ready(30)["services"]["a"]["pid"]
        assert handle.process.poll() is None and alive(pid)
    finally:
        assert handle.stop(30) == 0
    assert not alive(pid)


@pytest.mark.skipif(not on_linux(), reason="the kernel's parent-death signal is Linux only")
def test_children_stop_even_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    handle = StackHandle.launch(StackSpec(run_dir=tmp_path / "run", services=[service("a"), service("b")]))
    pids = [s["pid"] for s in handle.wait_ready(30)["services"].values()]

    handle.process.kill()
    handle.process.wait(10)

    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=15, what="the orphaned children to stop")


def test_a_child_that_exits_with_a_configuration_error_is_not_restarted(tmp_path: Path) -> None:
    code = "import time; print('up', flush=True); time.sleep(0.3); print('PAYQ_AWS_REGION is required', flush=True); raise SystemExit(78)"
    supervisor = Supervisor(StackSpec(run_dir=tmp_path, services=[service("worker", code)]), say=lambda line: None)
    supervisor.start()
    try:
        with pytest.raises(StackError, match=r"(?s)worker exited with 78, which restarting cannot mend:\n.*PAYQ_AWS_REGION is required"):
            wait_for(lambda: supervisor.check() or False, timeout=15, what="the configuration error")
        assert supervisor.children[0].restarts == 0
    finally:
        supervisor.stop()
