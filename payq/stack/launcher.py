"""The launcher's side of the local stack: start a supervisor, wait until it is ready, stop it.

The supervisor itself (:mod:`payq.stack.supervisor`) runs as ``python -m payq.stack``
and reads its :class:`~payq.stack.supervisor.StackSpec` from stdin; see that module for
how the pipe doubles as a "my launcher is gone" signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from payq.stack.supervisor import SUPERVISOR_LOG, StackError, StackSpec, log_tail, read_state


class StackHandle:
    """The launcher's side of a running supervisor: wait until ready, read its state, stop it."""

    def __init__(self, spec: StackSpec, process: subprocess.Popen[bytes]) -> None:
        self.spec = spec
        self.process = process

    @classmethod
    def launch(cls, spec: StackSpec) -> StackHandle:
        """Start the supervisor with ``spec``; returns at once (see :meth:`wait_ready`)."""
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        with (spec.run_dir / SUPERVISOR_LOG).open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "payq.stack"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the launcher, which then stops the stack in order
            )
        stdin: IO[bytes] | None = process.stdin
        assert stdin is not None
        stdin.write(spec.model_dump_json().encode() + b"\n")
        stdin.flush()
        if spec.detached:
            # a detached stack must not stop when this pipe closes
            stdin.close()
        return cls(spec, process)

    def state(self) -> dict[str, Any] | None:
        """The supervisor's last published state."""
        return read_state(self.spec.run_dir)

    def wait_ready(self, timeout: float, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Wait until every service is ready; :class:`StackError` with the cause if the stack fails or is too slow."""
        deadline = time.monotonic() + timeout
        announced: set[str] = set()
        while True:
            state = self.state()
            if state is not None:
                if state["phase"] == "ready":
                    return state
                if progress is not None:
                    for name, service in state["services"].items():
                        if service["pid"] is not None and name not in announced:
                            announced.add(name)
                            progress(name)
            if self.process.poll() is not None:
                error = (state or {}).get("error") or log_tail(self.spec.run_dir / SUPERVISOR_LOG)
                raise StackError(f"the stack did not start: {error}")
            if time.monotonic() > deadline:
                raise StackError(f"the stack was not ready within {timeout:g}s; logs in {self.spec.run_dir}")
            time.sleep(0.05)

    def stop(self, timeout: float = 90.0) -> int:
        """Ask the supervisor to stop everything and wait for it; returns its exit code."""
        return stop_supervisor(self.process.pid, timeout, self.process)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not alive for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def is_supervisor(pid: int) -> bool:
    """Whether ``pid`` is a live ``payq.stack`` supervisor (not a stranger that inherited a stale pid)."""
    if not _pid_alive(pid):
        return False
    try:
        return b"payq.stack" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (not Linux): trust the pid


def stop_supervisor(pid: int, timeout: float = 90.0, process: subprocess.Popen[bytes] | None = None) -> int:
    """SIGTERM the supervisor ``pid`` and wait until it has stopped its children and exited.

    ``process`` is given when this process launched it (so it can be reaped and
    its exit code returned); a kept stack from an earlier run is waited for by pid.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if process is not None:
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        return code
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # its children get SIGTERM from the kernel (PDEATHSIG)
            break
        time.sleep(0.1)
    return 0
