"""Worker fleets for the three systems measured: payq, the bare Celery task, the bare Dramatiq actor.

A :class:`Fleet` is some worker processes of one system, started together and
stopped together; its RSS is the sum over every process and pool child.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks.processes import REPO_ROOT, Managed


@dataclass(frozen=True)
class Shape:
    """How a system's workers are run: ``processes`` worker processes, each a ``pool`` of ``concurrency``."""

    pool: str
    concurrency: int
    processes: int = 1

    @property
    def label(self) -> str:
        """``threads 2×32`` style."""
        return f"{self.pool} {self.processes}×{self.concurrency}"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a worker: ours without any ``PAYQ_*``/``BENCH_*`` the caller had set, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYQ_", "BENCH_"))}
    env.update(extra)
    return env


class Fleet:
    """Worker processes of one system; :meth:`stop` ends them all."""

    def __init__(self, system: str, shape: Shape, procs: list[Managed], redis_url: str, hostnames: list[str]) -> None:
        self.system = system
        self.shape = shape
        self.procs = procs
        self.redis_url = redis_url
        self.hostnames = hostnames

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Wait until every worker process consumes (Celery: answers a remote-control ping; Dramatiq: every
        process has sent its broker heartbeat); returns the seconds it took. Start-up is not what a drain measures.
        """
        started = time.monotonic()
        deadline = started + timeout
        if self.system == "dramatiq":
            client = redis.Redis.from_url(self.redis_url)
            try:
                while int(client.zcard("dramatiq:__heartbeats__")) < self.shape.processes:
                    self._check(deadline)
                    time.sleep(0.1)
            finally:
                client.close()
            return time.monotonic() - started
        from celery import Celery

        app = Celery("bench-ping", broker=self.redis_url)
        try:
            waiting = set(self.hostnames)
            while waiting:
                self._check(deadline)
                for reply in app.control.ping(timeout=0.5) or []:
                    waiting -= {name.split("@", 1)[0] for name in reply}
        finally:
            app.close()
        return time.monotonic() - started

    def _check(self, deadline: float) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.system} workers exited while starting:\n{self.output()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{self.system} workers not ready in time:\n{self.output()}")

    def rss_kib(self) -> int:
        """Resident memory of every process of the fleet, KiB."""
        return sum(p.rss_kib() for p in self.procs)

    def process_count(self) -> int:
        """Processes counted in :meth:`rss_kib`."""
        return sum(len(p.pids()) for p in self.procs)

    def main_pids(self) -> list[int]:
        """The main pid of each worker."""
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        """Whether every worker is still running."""
        return all(p.alive() for p in self.procs)

    def output(self) -> str:
        """The tail of each worker's output."""
        return "\n".join(f"--- {p.name}\n{p.text(3000)}" for p in self.procs)

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown for all at once (SIGTERM to each process group); whatever is left after ``timeout`` is killed."""
        for proc in self.procs:
            proc.send(signal.SIGTERM)
        for proc in self.procs:
            proc.stop(timeout=timeout)


def _celery_args(app: str, shape: Shape, name: str, loglevel: str, queues: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", app, "worker", "--pool", shape.pool, "--concurrency", str(shape.concurrency),
        "--without-gossip", "--without-mingle", "--loglevel", loglevel, "--hostname", f"{name}@%h",
        *(["--queues", ",".join(queues)] if queues else []),
    ]


PAYQ_TREE = "BENCH_PAYQ_TREE"  # run payq's workers from this checkout instead (a before and after in one sitting)


def start_payq(
    shape: Shape, redis_url: str, api_url: str, *, env: dict[str, str] | None = None, loglevel: str = "WARNING",
    tweaks: tuple[str, ...] = (), queues: tuple[str, ...] = (), options: tuple[str, ...] = (),
) -> Fleet:
    """``celery -A workers.app worker`` × ``shape.processes``, with ``PAYQ_WORKER_POOL``/``CONCURRENCY`` matching the pool.

    With ``tweaks``, the app is :mod:`benchmarks.variant` (payq's app with those tweaks applied). ``queues`` and
    ``options`` go to the command line. With ``BENCH_PAYQ_TREE`` set to another checkout, the workers are that
    checkout's (the measures and producers stay this one's).
    """
    settings_env = clean_env(
        PAYQ_REDIS_URL=redis_url, PAYQ_API_BASE_URL=api_url,
        PAYQ_WORKER_POOL=shape.pool, PAYQ_WORKER_CONCURRENCY=str(shape.concurrency), **(env or {}),
    )
    app = "workers.app"
    if tweaks:
        settings_env["BENCH_TWEAKS"] = ",".join(tweaks)
        app = "benchmarks.variant"
    tree = Path(os.environ.get(PAYQ_TREE) or REPO_ROOT)
    if tree != REPO_ROOT:
        settings_env["PYTHONPATH"] = str(tree)
    names = [f"payq{uuid.uuid4().hex[:4]}-{i}" for i in range(shape.processes)]
    procs = [Managed(f"payq-{i}", [*_celery_args(app, shape, name, loglevel, queues), *options], settings_env, cwd=tree)
             for i, name in enumerate(names)]
    return Fleet("payq", shape, procs, redis_url, names)


def start_bare_celery(
    shape: Shape, redis_url: str, api_url: str, *, payq_config: bool = False, tweaks: tuple[str, ...] = (),
    app: str = "benchmarks.bare_celery", queues: tuple[str, ...] = (), env: dict[str, str] | None = None,
) -> Fleet:
    """``celery -A benchmarks.bare_celery worker`` × ``shape.processes`` (or another bare ``app``, consuming ``queues``)."""
    worker_env = clean_env(BENCH_REDIS_URL=redis_url, BENCH_API_URL=api_url, BENCH_HTTP_POOL=str(max(shape.concurrency, 10)),
                           BENCH_TWEAKS=",".join(tweaks), **(env or {}))
    if payq_config:
        worker_env.update(BENCH_PAYQ_CELERY_CONFIG="1", PAYQ_WORKER_CONCURRENCY=str(shape.concurrency))
    names = [f"bare{uuid.uuid4().hex[:4]}-{i}" for i in range(shape.processes)]
    procs = [Managed(f"celery-{i}", _celery_args(app, shape, name, "WARNING", queues), worker_env) for i, name in enumerate(names)]
    return Fleet("bare-celery", shape, procs, redis_url, names)


def start_dramatiq(
    shape: Shape, redis_url: str, api_url: str, *, module: str = "benchmarks.bare_dramatiq", env: dict[str, str] | None = None,
) -> Fleet:
    """``dramatiq benchmarks.bare_dramatiq -p P -t T`` (one parent, ``P`` worker processes; or another bare ``module``)."""
    worker_env = clean_env(BENCH_REDIS_URL=redis_url, BENCH_API_URL=api_url, BENCH_HTTP_POOL=str(max(shape.concurrency, 10)),
                           **(env or {}))
    args = [
        sys.executable, "-m", "dramatiq", module, "--processes", str(shape.processes),
        "--threads", str(shape.concurrency), "--skip-logging",
    ]
    return Fleet("dramatiq", shape, [Managed("dramatiq", args, worker_env)], redis_url, [])
