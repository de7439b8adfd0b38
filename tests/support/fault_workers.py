"""Workers for the fault scenarios: one process a test kills at will, or a pool restarted by payq's own supervisor."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from payq.stack.launcher import StackHandle
from payq.stack.supervisor import Probe, Service, StackSpec, log_tail
from tests.support.polling import wait_for
from tests.support.worker import REPO_ROOT, TEST_ENV, WorkerProcess

START_TIMEOUT = 120.0  # seconds for a worker to say " ready."; generous, for a machine other test runs keep busy



class FaultWorker(WorkerProcess):
    """:class:`WorkerProcess` with more patience at start, and the helpers the fault scenarios need."""

    def start(self) -> None:
        """Start (or start again) and wait until Celery says it is ready.

        Like :meth:`WorkerProcess.start`, with more patience: on a busy two-core
        machine a worker can take longer than its 30 s to import and connect.
        """
        offset = self.log_path.stat().st_size
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while " ready." not in self.log()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)  # poll interval, bounded by the deadline

    @property
    def alive(self) -> bool:
        """Whether the main process is still running."""
        return self.process is not None and self.process.poll() is None

    def hostname_prefix(self) -> str:
        """What this worker's ``--hostname`` starts with, as job records store it (``name@host``)."""
        return f"{self.name}@"


def worker_argv(name: str, *, concurrency: int = 8) -> list[str]:
    """``celery worker`` as the local stack runs it, with a fixed hostname so logs and job records name it."""
    return [
        sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "threads", "--concurrency", str(concurrency),
        "--loglevel", "INFO", "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle",
    ]


class SupervisedWorkers:
    """Workers run by ``python -m payq.stack``, the supervisor of ``payq demo``, which restarts any that exits.

    Celery workers exit when Redis restarts while they hold unacknowledged
    messages; the supervisor starts them again after a short backoff.
    """

    def __init__(self, run_dir: Path, redis_url: str, api_url: str, *, count: int = 2, concurrency: int = 8,
                 env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.names = [f"worker-{i + 1}" for i in range(count)]
        # PYTHONPATH: the supervisor starts workers in its own working directory; the app lives in the repository
        worker_env = {**TEST_ENV, "PYTHONPATH": str(REPO_ROOT), "PAYQ_REDIS_URL": redis_url, "PAYQ_API_BASE_URL": api_url,
                      **(env or {})}
        services = [
            Service(name=name, argv=worker_argv(name, concurrency=concurrency), env=worker_env,
                    ready=Probe(kind="log", target=" ready."), startup_timeout=START_TIMEOUT, stop_timeout=10)
            for name in self.names
        ]
        self.handle = StackHandle.launch(StackSpec(run_dir=run_dir, services=services, remove_run_dir=False))
        self.handle.wait_ready(timeout=count * START_TIMEOUT)

    def state(self) -> dict[str, Any]:
        """The supervisor's published state (pids and restarts per worker)."""
        state = self.handle.state()
        assert state is not None
        return state

    def restarts(self) -> int:
        """Restarts of all workers so far."""
        return sum(int(s["restarts"]) for s in self.state()["services"].values())

    def pids(self) -> dict[str, int | None]:
        """Each worker's current process id."""
        return {name: s["pid"] for name, s in self.state()["services"].items()}

    def log(self, name: str) -> str:
        """Everything worker ``name`` printed, over all its restarts."""
        return (self.run_dir / f"{name}.log").read_text(errors="replace")

    def supervisor_log(self) -> str:
        """What the supervisor said (exits, restarts)."""
        return log_tail(self.run_dir / "supervisor.log", 20000)

    def all_ready(self) -> bool:
        """Whether every worker is running and has said " ready." once more than it was restarted."""
        services = self.state()["services"]
        return all(
            _alive(services[n]["pid"]) and self.log(n).count(" ready.") == 1 + int(services[n]["restarts"]) for n in self.names
        )

    def wait_all_ready(self, timeout: float = 60) -> None:
        """Wait until every worker, restarted or not, is ready."""
        wait_for(self.all_ready, timeout=timeout, interval=0.2, what="every supervised worker to be ready")

    def stop(self) -> None:
        """Stop the supervisor and every worker it runs."""
        self.handle.stop(timeout=60)


def _alive(pid: int | None) -> bool:
    """Whether ``pid`` runs and is not a zombie waiting for the supervisor to reap it."""
    if pid is None:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False
