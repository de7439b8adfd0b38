"""A real ``celery -A workers.app worker`` process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from config.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


# Every test worker: short backoffs, so retries show within seconds.
TEST_ENV = {
    "PAYQ_BACKOFF_BASE": "0.2",
    "PAYQ_BACKOFF_CAP": "1",
    "PAYQ_RETRY_AFTER_FLOOR": "0",
    "PAYQ_RETRY_AFTER_JITTER": "0.2",
    "PAYQ_HTTP_READ_TIMEOUT": "5",
    "PYTHONUNBUFFERED": "1",
}
# What an operator gets: every setting TEST_ENV shortens, back at its default.
DEFAULT_ENV = {name: str(Settings.model_fields[name.removeprefix("PAYQ_").lower()].default) for name in TEST_ENV if name.startswith("PAYQ_")}


class WorkerProcess:
    """One payq worker with its environment; ``env`` overrides ``PAYQ_*`` settings.

    ``pool`` and ``concurrency`` become ``--pool`` and ``--concurrency``; ``None``
    leaves the option out, as an operator typing the plain command does.
    ``options`` are more of ``celery worker``'s (``-Q``, ``--prefetch-multiplier``, ``--loglevel``: the last wins).
    """

    def __init__(self, redis_url: str, api_url: str, *, env: dict[str, str] | None = None,
                 pool: str | None = "threads", concurrency: int | None = 8, name: str | None = None,
                 options: tuple[str, ...] = ()) -> None:
        self.name = name or f"w{uuid.uuid4().hex[:6]}"
        self.log_path = Path(tempfile.mkstemp(prefix=f"payq-{self.name}-", suffix=".log")[1])
        self.env = {
            **os.environ,
            "PAYQ_REDIS_URL": redis_url,
            "PAYQ_API_BASE_URL": api_url,
            **TEST_ENV,
            **(env or {}),
        }
        self.args = [
            sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            *(["--pool", pool] if pool is not None else []),
            *(["--concurrency", str(concurrency)] if concurrency is not None else []),
            "--loglevel", "INFO", "--hostname", f"{self.name}@%h", "--without-gossip", "--without-mingle", *options,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the process and wait until Celery says it is ready."""
        offset = self.log_path.stat().st_size
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while " ready." not in self.log()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        """Everything the worker printed."""
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        """The worker's main process id."""
        assert self.process is not None
        return self.process.pid

    def rss_kib(self) -> int:
        """Resident memory of the worker process and its children, in KiB, from /proc."""
        total = 0
        for pid in [self.pid, *self._children()]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                continue
        return total

    def _children(self) -> list[int]:
        try:
            return [int(p) for p in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
        except FileNotFoundError:
            return []

    def kill(self) -> None:
        """SIGKILL: a crash, with jobs in hand."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (warm shutdown), then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
