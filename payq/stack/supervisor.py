"""The local stack: start payq's processes, restart any that dies, stop them all.

``payq demo`` describes the processes it wants (a :class:`StackSpec`: Redis,
the sandbox, a worker, Flower) and hands it to a supervisor that runs as its
own process, ``python -m payq.stack``. A separate process, not a thread of
the demo, so that ``payq demo --keep`` can leave the stack running *and still
supervised* after the demo has exited. The launching side (start it, wait
until ready, stop it) is :mod:`payq.stack.launcher`.

How nothing is left behind:

- The spec travels on the supervisor's stdin, so secrets in a child's
  environment (Flower's basic auth) never reach argv or a file.
- Unless the stack is ``detached``, the demo keeps that pipe open: when the
  demo exits by any means, even SIGKILL, the supervisor reads EOF and stops
  everything.
- Each child runs in its own process group (a Celery worker and its pool go
  down together) and, on Linux, is told by the kernel to stop when the
  supervisor dies, so not even a SIGKILL of the supervisor leaves orphans.

A child that exits is started again after a backoff that grows with each quick
failure (:func:`restart_delay`); Celery workers need that, because they exit
when Redis restarts while they hold unacknowledged messages.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import redis
import requests
from pydantic import BaseModel, Field

STATE_FILE = "stack.json"
SUPERVISOR_LOG = "supervisor.log"
# A child that ran this long was healthy: its next exit starts the backoff from the beginning.
STABLE_AFTER_SECONDS = 30.0
_TICK_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message names the service and quotes its log."""


class Probe(BaseModel):
    """How to tell that a service is ready: Redis answers PING, an HTTP URL answers, or a line appears in its log."""

    kind: Literal["redis", "http", "log"]
    target: str


class Service(BaseModel):
    """One process of the stack. ``env`` is added to the supervisor's environment for this process only."""

    name: str
    argv: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    ready: Probe
    url: str | None = None
    startup_timeout: float = 30.0
    stop_timeout: float = 20.0
    # exit statuses that restarting cannot mend; 78 is EX_CONFIG, what a payq worker exits with
    # when its configuration or credentials make starting impossible
    fatal_exit_codes: list[int] = Field(default_factory=lambda: [os.EX_CONFIG])


class StackSpec(BaseModel):
    """Everything the supervisor needs: where to keep logs and state, and the services in start order."""

    run_dir: Path
    services: list[Service]
    # detached: the stack outlives whoever launched it (``payq demo --keep``)
    detached: bool = False
    # remove run_dir after a clean stop; a failed start keeps it so its logs can be read
    remove_run_dir: bool = True


def restart_delay(failures: int, base: float = 0.5, cap: float = 10.0) -> float:
    """Seconds to wait before restarting a child after its ``failures``-th quick exit in a row (1-based)."""
    return min(cap, base * 2.0 ** max(failures - 1, 0))


def log_tail(path: Path, limit: int = 2000) -> str:
    """The last ``limit`` characters of a log file, or an empty string if there is none."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The supervisor's last published state, or None before it has written one."""
    try:
        data: dict[str, Any] = json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    # write then rename: a reader never sees half a file
    tmp = run_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, run_dir / STATE_FILE)


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


# Loaded before any fork: the child may only make the call, not look the library up.
_LIBC = _load_libc()


def _die_with_parent(parent_pid: int) -> None:
    """Runs in the child between fork and exec: SIGTERM it when the supervisor dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
        os._exit(1)


class Child:
    """One supervised service: its current process, and how often it has been restarted."""

    def __init__(self, service: Service, run_dir: Path, clock: Callable[[], float]) -> None:
        self.service = service
        self.log_path = run_dir / f"{service.name}.log"
        self._clock = clock
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.failures = 0
        self.restart_at: float | None = None
        self._log_offset = 0
        self._http = requests.Session()
        self._http.trust_env = False  # a proxy from the environment must not stand between us and 127.0.0.1

    def spawn(self) -> None:
        """Start the process (again), its output appended to ``<name>.log``."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.service.argv,
                env={**os.environ, **self.service.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, out of reach of the terminal's Ctrl-C
                # preexec_fn is safe here: the supervisor runs no other threads that could hold a lock
                preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            )
        self.started_at = self._clock()
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        """The current process id, or None before the first start."""
        return self.process.pid if self.process is not None else None

    def poll(self) -> int | None:
        """The exit code if the process has exited, else None."""
        return self.process.poll() if self.process is not None else None

    def is_ready(self) -> bool:
        """Whether the service answers its readiness probe."""
        probe = self.service.ready
        try:
            if probe.kind == "redis":
                client = redis.Redis.from_url(probe.target, socket_connect_timeout=0.5, socket_timeout=0.5)
                try:
                    return bool(client.ping())
                finally:
                    client.close()
            if probe.kind == "http":
                return self._http.get(probe.target, timeout=1.0).status_code < 500
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)  # only what this start has written counts
                return probe.target.encode() in log.read()
        except (redis.RedisError, requests.RequestException, OSError):
            return False

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's whole process group (a worker and its pool)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        """SIGTERM the group, wait ``stop_timeout``, then SIGKILL whatever is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(self.service.stop_timeout)
        # also reaps pool children a crashed leader left behind in its group
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self._http.close()


class Supervisor:
    """Starts the services in order, restarts any that exits, and stops them in reverse order."""

    def __init__(
        self,
        spec: StackSpec,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] = print,
    ) -> None:
        self.spec = spec
        self._should_stop = should_stop
        self._clock = clock
        self._say = say
        self.children = [Child(service, spec.run_dir, clock) for service in spec.services]
        self.phase = "starting"
        self.error: str | None = None

    def start(self) -> None:
        """Start each service and wait until it is ready before starting the next (the worker needs Redis, …)."""
        for child in self.children:
            if self._should_stop():
                raise StackError("stopped while starting")
            child.spawn()
            self._publish()
            deadline = self._clock() + child.service.startup_timeout
            while not child.is_ready():
                code = child.poll()
                if code is not None:
                    raise StackError(f"{child.service.name} exited with {code} before it was ready:\n{log_tail(child.log_path)}")
                if self._clock() > deadline:
                    raise StackError(f"{child.service.name} not ready after {child.service.startup_timeout:g}s:\n{log_tail(child.log_path)}")
                if self._should_stop():
                    raise StackError("stopped while starting")
                time.sleep(0.05)
            self._say(f"{child.service.name} ready (pid {child.pid})")
        self.phase = "ready"
        self._publish()

    def check(self) -> None:
        """One round of supervision: notice exits, and restart children whose backoff has passed.

        A child that exits with one of its ``fatal_exit_codes`` is not restarted:
        :class:`StackError` says why, and the caller stops the stack.
        """
        now = self._clock()
        for child in self.children:
            code = child.poll()
            if code is None:
                continue
            if child.restart_at is None:
                if code in child.service.fatal_exit_codes:
                    raise StackError(f"{child.service.name} exited with {code}, which restarting cannot mend:\n{log_tail(child.log_path)}")
                ran = now - child.started_at
                child.failures = 1 if ran >= STABLE_AFTER_SECONDS else child.failures + 1
                delay = restart_delay(child.failures)
                child.restart_at = now + delay
                child.signal_group(signal.SIGKILL)  # a dead leader's pool children must not linger
                self._say(f"{child.service.name} (pid {child.pid}) exited with {code} after {ran:.1f}s; restarting in {delay:g}s")
            if now >= child.restart_at:
                child.spawn()
                child.restarts += 1
                self._say(f"{child.service.name} restarted (pid {child.pid}, restart {child.restarts})")
                self._publish()

    def stop(self) -> None:
        """Stop every service, last started first (the worker before the Redis it acknowledges to)."""
        self.phase = "stopping"
        self._publish()
        for child in reversed(self.children):
            child.stop()
        self.phase = "stopped"
        self._publish()

    def state(self) -> dict[str, Any]:
        """What ``stack.json`` holds: the phase, the supervisor's pid, and each service's pid, url and restarts."""
        return {
            "phase": self.phase,
            "error": self.error,
            "supervisor_pid": os.getpid(),
            "detached": self.spec.detached,
            "services": {
                c.service.name: {"pid": c.pid, "url": c.service.url, "restarts": c.restarts, "log": str(c.log_path)}
                for c in self.children
            },
        }

    def _publish(self) -> None:
        with contextlib.suppress(OSError):
            _write_state(self.spec.run_dir, self.state())


def _read_spec_line(fd: int) -> bytes:
    # raw reads, not sys.stdin: a buffered reader could swallow the EOF we watch for later
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def _pipe_closed(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` on the launcher's pipe; True once it is closed (the launcher is gone)."""
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable) and os.read(fd, 4096) == b""


def supervise(spec: StackSpec, stdin_fd: int) -> int:
    """Run the stack until SIGTERM/SIGINT/SIGHUP or, unless detached, until the launcher goes away."""
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, request_stop)

    launcher_gone = False

    def should_stop() -> bool:
        nonlocal launcher_gone
        if not spec.detached and not launcher_gone:
            launcher_gone = _pipe_closed(stdin_fd, 0)
        return stop_requested or launcher_gone

    def say(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    supervisor = Supervisor(spec, should_stop=should_stop, say=say)
    code = 0
    try:
        supervisor.start()
        while not should_stop():
            if spec.detached:
                time.sleep(_TICK_SECONDS)
            else:
                launcher_gone = _pipe_closed(stdin_fd, _TICK_SECONDS)
            supervisor.check()
        say("stopping: " + ("asked to" if stop_requested else "launcher exited"))
    except StackError as exc:
        if should_stop():
            say("stopped while starting")
        else:
            supervisor.error = str(exc)
            say(f"stack failed: {exc}")
            code = 1
    finally:
        supervisor.stop()
        if supervisor.error is not None:
            supervisor.phase = "failed"
            supervisor._publish()
    if code == 0 and spec.remove_run_dir:
        shutil.rmtree(spec.run_dir, ignore_errors=True)
    return code


def main() -> int:
    """``python -m payq.stack``: read a :class:`StackSpec` (one JSON line) from stdin and supervise it."""
    line = _read_spec_line(sys.stdin.fileno())
    if not line.strip():
        print("payq.stack: expected a stack spec (one JSON line) on stdin", file=sys.stderr)
        return 2
    return supervise(StackSpec.model_validate_json(line), sys.stdin.fileno())
