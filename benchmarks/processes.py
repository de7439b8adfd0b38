"""The processes a benchmark run starts, each in its own session so it (and its pool children) can be ended by id.

Every process started here is registered; :func:`stop_all` ends the ones still
running, and ``python -m benchmarks`` calls it on exit, on SIGTERM and on
Ctrl-C, so a run never leaves a Redis, a sandbox or a worker behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import redis
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
_LIVE: list[Managed] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Managed:
    """A subprocess in a new session (its process group id is its pid), output kept in a temporary file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> None:
        self.name = name
        self.args = args
        self.output: IO[bytes] = tempfile.TemporaryFile(prefix=f"payq-bench-{name}-")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            args, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=self.output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        _LIVE.append(self)

    @property
    def pid(self) -> int:
        """The main process id (also the process group id)."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the main process is still running."""
        return self.process.poll() is None

    def text(self, tail: int = 4000) -> str:
        """The last ``tail`` characters the process wrote."""
        if self.output.closed:
            return ""
        self.output.flush()
        self.output.seek(0)
        return self.output.read().decode("utf-8", "replace")[-tail:]

    def pids(self) -> list[int]:
        """The main process and every descendant (pool children, Dramatiq's worker processes)."""
        found = [self.pid]
        index = 0
        while index < len(found):
            pid = found[index]
            index += 1
            for task in _tasks(pid):
                with contextlib.suppress(OSError, ValueError):
                    found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        return found

    def rss_kib(self) -> int:
        """Resident memory of the process and all its descendants, KiB."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def send(self, sig: int) -> None:
        """Send ``sig`` to the process group, if it still runs."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Send ``sig`` to the process group, wait up to ``timeout``, then SIGKILL the group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # children of a prefork or Dramatiq parent may outlive it: end the group either way
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        if self in _LIVE:
            _LIVE.remove(self)
        if not self.output.closed:
            self.output.close()


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def stop_all() -> None:
    """End every process this run started and has not stopped yet (newest first)."""
    for proc in list(reversed(_LIVE)):
        proc.stop(signal.SIGKILL, timeout=2)


class RedisProc(Managed):
    """A private ``redis-server`` on a free port: no persistence, no eviction; ``wrapper``, a command it runs under (valgrind)."""

    def __init__(self, wrapper: Sequence[str] = (), start_timeout: float = 10.0) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not on PATH (bash scripts/system-deps.sh installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix="payq-bench-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        super().__init__("redis", [
            *wrapper, shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction", "--protected-mode", "yes",
        ])
        client = self.client()
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if not self.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {self.text()}") from None
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        """A decoding client."""
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_connect_timeout=2, socket_timeout=60)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the server and remove its directory."""
        super().stop(sig, timeout)
        shutil.rmtree(self.dir, ignore_errors=True)


def admin_session(proc: Managed, url: str, what: str) -> requests.Session:
    """A session to the HTTP process ``proc`` just started at ``url``, once its ``/admin/health`` answers (15 s at most)."""
    session = requests.Session()
    session.trust_env = False  # all traffic stays on 127.0.0.1, never through a proxy
    deadline = time.monotonic() + 15
    while True:
        with contextlib.suppress(requests.ConnectionError):
            if session.get(url + "/admin/health", timeout=1).ok:
                return session
        if not proc.alive() or time.monotonic() > deadline:
            session.close()
            raise RuntimeError(f"{what} did not start: {proc.text()}")
        time.sleep(0.05)


class SandboxProc(Managed):
    """``python -m sandbox --auto-register`` on a free port, ready once ``/admin/health`` answers.

    With ``notify_secret`` it checks the signature of each outcome notification ``/admin/notifications`` receives.
    """

    def __init__(self, latency_ms: float = 0.0, log_limit: int = 1_000_000, notify_secret: str | None = None) -> None:
        self.latency_ms = latency_ms
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(f"sandbox-{latency_ms:g}ms", [
            sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(self.port), "--auto-register",
            "--latency-ms", str(latency_ms), "--log-limit", str(log_limit),
        ], env={"PAYQ_SANDBOX_NOTIFY_SECRET": notify_secret} if notify_secret else None)
        self.session = admin_session(self, self.url, "sandbox")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the sandbox and close the admin session."""
        self.session.close()
        super().stop(sig, timeout)


class ServeProc(Managed):
    """``payq serve`` on a free port against ``redis_url``, with ``env`` (``PAYQ_*`` settings), ready once ``/healthz`` answers."""

    def __init__(self, redis_url: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        payq = Path(sys.executable).with_name("payq")
        super().__init__("serve", [str(payq), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                         env={"PAYQ_REDIS_URL": redis_url, **(env or {})})
        self.session = requests.Session()
        self.session.trust_env = False  # all traffic stays on 127.0.0.1, never through a proxy
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if self.session.get(self.url + "/healthz", timeout=1).ok:
                    return
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"payq serve did not start: {self.text()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the server and close the session."""
        self.session.close()
        super().stop(sig, timeout)


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far, seconds (from /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the whole line)
    return total / ticks


def machine_busy_seconds() -> float:
    """CPU seconds all processors have spent busy since boot (every state but idle and iowait), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """How much CPU processes that are not this run's used between :meth:`start` and :meth:`cores` (the machine is shared)."""

    def __init__(self) -> None:
        self._t0 = self._busy0 = self._ours0 = 0.0

    def _ours(self) -> float:
        # live processes from /proc; ended ones are in this process's children times once reaped (Managed.stop waits)
        times = os.times()
        live = sum(cpu_seconds(p.pids()) for p in _LIVE)
        return live + times.user + times.system + times.children_user + times.children_system

    def start(self) -> LoadMeter:
        """Begin measuring."""
        self._t0, self._busy0, self._ours0 = time.monotonic(), machine_busy_seconds(), self._ours()
        return self

    def cores(self) -> float:
        """Others' average CPU use since :meth:`start`, in cores."""
        elapsed = time.monotonic() - self._t0
        if elapsed <= 0:
            return 0.0
        others = (machine_busy_seconds() - self._busy0) - (self._ours() - self._ours0)
        return round(max(0.0, others) / elapsed, 2)
