"""``payq demo`` (``make demo``): the whole local stack, about a hundred trips through it, and what happened.

Redis (``PAYQ_REDIS_URL`` if it answers, else a private ``redis-server`` with
the append-only file on), the sandbox with a fault script (429, 503, 500, an
unknown trip), supervised workers, ``payq serve`` (the HTTP intake) and Flower all run under one supervisor
(:mod:`payq.stack.supervisor`). The demo enqueues through the producer API, shows
progress until every job has settled, prints a summary and the commands to
look closer, and stops everything it started, on Ctrl-C too. ``--keep``
leaves the stack running (still supervised); ``payq demo --stop`` ends it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import redis
import requests

from config.settings import Settings, redact_url
from payq.exits import EXIT_FAULT, exits_cleanly, settings_from_env
from payq.serve.access import digest, new_token
from payq.stack.launcher import StackHandle, is_supervisor, stop_supervisor
from payq.stack.plan import DemoPlan, fault_script
from payq.stack.report import Notifications, Snapshot, Summary, Tracker, progress_line
from payq.stack.supervisor import Probe, Service, StackError, StackSpec, log_tail
from tasks.notify.events import new_secret
from tasks.producer import Producer
from tasks.states import SETTLED_STATES
from tasks.stores import Stores

KEPT_STACK_FILE = "demo.json"
FLOWER_PORT = 5555
_POLL_SECONDS = 0.25
INSTALL_REDIS = (
    "redis-server is not on PATH: install it (Debian/Ubuntu: sudo apt-get install redis-server; "
    "macOS: brew install redis) or set PAYQ_REDIS_URL to a Redis that answers"
)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _other_workers(redis_url: str, ours: str) -> list[str]:
    """Celery workers on this Redis other than the demo's own (node names starting with ``ours``)."""
    from celery import Celery  # only needed here; keeps ``payq``'s start-up light

    app = Celery("payq-demo", broker=redis_url)
    try:
        replies = app.control.ping(timeout=1.0)
    finally:
        app.close()
    return sorted(name for reply in replies for name in reply if not name.startswith(ours))


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo like Ctrl-C does, so the stack is stopped either way."""
    previous = {sig: signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(message: str) -> None:
    click.echo(message, err=True)


class Progress:
    """Progress on stderr: one line redrawn in place on a terminal, a line every few seconds otherwise."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False

    def show(self, line: str, *, final: bool = False) -> None:
        """Draw ``line`` (always when ``final``)."""
        now = time.monotonic()
        if self._tty:
            click.echo("\r\033[2K" + line, err=True, nl=final)
            self._shown = not final
        elif final or now - self._last >= 3.0:
            click.echo(line, err=True)
            self._last = now

    def clear(self) -> None:
        """End a redrawn line, so what follows starts on its own line."""
        if self._shown:
            click.echo("", err=True)
            self._shown = False


def _services(run_dir: Path, redis_url: str, private_redis_port: int | None, sandbox_port: int,
              flower_port: int, flower_auth: str, pool: str, concurrency: int, processes: int, run_id: str,
              startup_timeout: float, serve_port: int, intake_tokens: dict[str, list[str]], notify_secret: str) -> list[Service]:
    """The processes of the demo stack, in start order; ``intake_tokens`` is what ``payq serve`` accepts (digests only).

    Outcome notifications go to the sandbox's receiver, signed with
    ``notify_secret``, which the sandbox checks; secrets travel by
    environment, never argv.
    """
    python = sys.executable
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    flower_url = f"http://127.0.0.1:{flower_port}"
    # the demo's workers call the sandbox, whatever PAYQ_API_* says in the environment or .env
    payq_env = {"PAYQ_REDIS_URL": redis_url, "PAYQ_API_BASE_URL": sandbox_url, "PAYQ_API_AUTH": "none", "PYTHONUNBUFFERED": "1",
                "PAYQ_NOTIFY_URL": f"{sandbox_url}/admin/notifications", "PAYQ_NOTIFY_SECRET": notify_secret}
    services: list[Service] = []
    if private_redis_port is not None:
        data = run_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        redis_server = shutil.which("redis-server") or "redis-server"
        services.append(Service(
            name="redis",
            argv=[redis_server, "--port", str(private_redis_port), "--bind", "127.0.0.1", "--dir", str(data),
                  "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--save", ""],
            ready=Probe(kind="redis", target=redis_url), url=redis_url, startup_timeout=startup_timeout, stop_timeout=10,
        ))
    faults = run_dir / "faults.json"
    services.append(Service(
        name="sandbox",
        argv=[python, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(sandbox_port), "--auto-register", "--faults", str(faults)],
        env={**payq_env, "PAYQ_SANDBOX_NOTIFY_SECRET": notify_secret}, ready=Probe(kind="http", target=f"{sandbox_url}/admin/health"), url=sandbox_url,
        startup_timeout=startup_timeout, stop_timeout=5,
    ))
    services.extend(Service(
        name=f"worker-{i}",
        argv=[python, "-m", "celery", "-A", "workers.app", "worker", "--pool", pool, "--concurrency", str(concurrency),
              "--loglevel", "INFO", "--hostname", f"demo-{run_id}-{i}@%h", "--without-mingle", "--without-gossip"],
        env=payq_env, ready=Probe(kind="log", target=" ready."), startup_timeout=startup_timeout, stop_timeout=25,
    ) for i in range(1, processes + 1))
    serve_url = f"http://127.0.0.1:{serve_port}"
    services.append(Service(
        name="serve",
        argv=[python, "-m", "payq.serve", "--host", "127.0.0.1", "--port", str(serve_port)],
        # the console beside the intake, behind Flower's credentials, linking to this Flower
        env={**payq_env, "PAYQ_INTAKE_TOKENS": json.dumps(intake_tokens), "PAYQ_CONSOLE_BASIC_AUTH": flower_auth,
             "PAYQ_FLOWER_URL": flower_url},
        ready=Probe(kind="http", target=f"{serve_url}/readyz"), url=serve_url, startup_timeout=startup_timeout, stop_timeout=10,
    ))
    services.append(Service(
        name="flower",
        argv=[python, "-m", "celery", "-A", "workers.app", "flower", "--address=127.0.0.1", f"--port={flower_port}"],
        # by environment, never argv: anyone on the machine can read a process's argv
        env={**payq_env, "FLOWER_BASIC_AUTH": flower_auth},
        ready=Probe(kind="http", target=f"{flower_url}/healthcheck"), url=flower_url,
        startup_timeout=startup_timeout, stop_timeout=10,
    ))
    return services


def stop_kept_stack(state_dir: Path) -> None:
    """``payq demo --stop``: stop the stack an earlier ``payq demo --keep`` left running."""
    path = state_dir / KEPT_STACK_FILE
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        _say(f"no kept demo stack ({path} not found)")
        return
    pid = int(kept["supervisor_pid"])
    if is_supervisor(pid):
        _say(f"stopping the demo stack (supervisor pid {pid}) …")
        stop_supervisor(pid)
        _say("stopped")
    else:
        _say(f"the kept demo stack (supervisor pid {pid}) is no longer running")
    path.unlink(missing_ok=True)


def _kept_stack_running(state_dir: Path) -> int | None:
    try:
        pid = int(json.loads((state_dir / KEPT_STACK_FILE).read_text())["supervisor_pid"])
    except (OSError, ValueError, KeyError):
        return None
    return pid if is_supervisor(pid) else None


@click.command("demo")
@click.option("--trips", type=click.IntRange(3, 10_000), default=100, show_default=True, help="Shopping trips to enqueue.")
@click.option("--keep", is_flag=True, help="Leave the stack running (still supervised) and print the addresses and credentials "
                                         "of Flower, the intake and the console.")
@click.option("--stop", "stop", is_flag=True, help="Stop the stack a previous --keep left running, and exit.")
@click.option("--pool", type=click.Choice(["threads", "prefork", "gevent", "solo"]), default=None,
              help="Worker pool  [default: PAYQ_WORKER_POOL]")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Worker concurrency  [default: PAYQ_WORKER_CONCURRENCY]")
@click.option("--processes", type=click.IntRange(min=1), default=None, help="Worker processes  [default: PAYQ_WORKER_PROCESSES]")
@click.option("--redis-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port of the private redis-server, when one is started (0: a free one).")
@click.option("--sandbox-port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Sandbox port (0: a free one).")
@click.option("--flower-port", type=click.IntRange(0, 65535), default=None,
              help=f"Flower port (0: a free one)  [default: {FLOWER_PORT}, or a free one if it is taken]")
@click.option("--serve-port", type=click.IntRange(0, 65535), default=None,
              help="Port of payq serve, the HTTP intake (0: a free one)  [default: PAYQ_SERVE_PORT, or a free one if it is taken]")
@click.option("--timeout", "settle_timeout", type=click.FloatRange(min=1), default=100.0, show_default=True,
              help="Seconds to wait for every job to settle.")
@click.option("--startup-timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds each process may take to become ready.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".payq"), show_default=True,
              help="Where --keep records the running stack for --stop.")
def demo_command(trips: int, keep: bool, stop: bool, pool: str | None, concurrency: int | None, processes: int | None, redis_port: int,
                 sandbox_port: int, flower_port: int | None, serve_port: int | None, settle_timeout: float, startup_timeout: float,
                 state_dir: Path) -> None:
    """Run the local stack and about 100 trips through it, with faults; summarise what happened."""
    if stop:
        stop_kept_stack(state_dir)
        return
    settings = settings_from_env()
    if keep and (pid := _kept_stack_running(state_dir)) is not None:
        _say(f"a kept demo stack is already running (supervisor pid {pid}); stop it first with: payq demo --stop")
        sys.exit(EXIT_FAULT)

    private_redis_port: int | None = None
    if "redis_url" in settings.model_fields_set and _redis_answers(settings.redis_url):
        redis_url = settings.redis_url
        _say(f"using Redis at {redact_url(redis_url)} (PAYQ_REDIS_URL)")
    else:
        if "redis_url" in settings.model_fields_set:
            _say(f"PAYQ_REDIS_URL ({redact_url(settings.redis_url)}) does not answer; starting a private redis-server")
        if shutil.which("redis-server") is None:
            _say(INSTALL_REDIS)
            sys.exit(EXIT_FAULT)
        private_redis_port = redis_port or free_port()
        redis_url = f"redis://127.0.0.1:{private_redis_port}/0"

    run_id = uuid.uuid4().hex[:6]
    plan = DemoPlan.build(trips, run_id)
    run_dir = Path(tempfile.mkdtemp(prefix=f"payq-demo-{run_id}-"))
    (run_dir / "faults.json").write_text(json.dumps(fault_script(plan), indent=2))
    if flower_port is None:
        flower_port = FLOWER_PORT if _port_is_free(FLOWER_PORT) else 0
    flower_port = flower_port or free_port()
    if serve_port is None:
        serve_port = settings.serve_port if settings.serve_port and _port_is_free(settings.serve_port) else 0
    serve_port = serve_port or free_port()
    # a token for the demo's store, beside any configured ones: with --keep, curl can enqueue into the stack
    intake_token = new_token()
    intake_tokens = {**settings.intake_tokens, digest(intake_token): [plan.store_id]}
    if settings.flower_basic_auth is not None:
        flower_auth, generated = settings.flower_basic_auth.get_secret_value(), False
    else:
        flower_auth, generated = f"payq:{secrets.token_urlsafe(12)}", True
    pool = pool or settings.worker_pool
    concurrency = concurrency or settings.worker_concurrency
    processes = processes or settings.worker_processes
    services = _services(run_dir, redis_url, private_redis_port, sandbox_port or free_port(), flower_port,
                         flower_auth, pool, concurrency, processes, run_id, startup_timeout, serve_port, intake_tokens,
                         new_secret())
    spec = StackSpec(run_dir=run_dir, services=services, detached=keep)

    started = time.monotonic()
    _say(f"starting the stack (logs in {run_dir}) …")
    handle = StackHandle.launch(spec)
    leave_running = False
    with _signals_interrupt():
        try:
            state = handle.wait_ready(startup_timeout * len(services) + 10, progress=lambda name: _say(f"  starting {name}"))
            _say(_stack_banner(state, redis_url, private_redis_port is not None, pool, concurrency, processes,
                               time.monotonic() - started))
            if private_redis_port is None and (others := _other_workers(redis_url, f"demo-{run_id}-")):
                # they would take the demo's jobs and run them against whatever API they are configured for
                raise StackError(f"other payq workers consume this Redis ({', '.join(others[:3])}); "
                                 "stop them, or unset PAYQ_REDIS_URL so the demo uses a Redis of its own")
            with exits_cleanly():
                summary = _run(settings, redis_url, plan, handle, settle_timeout)
            click.echo(summary.render())
            click.echo(_next_steps(summary, redis_url, state, private_redis_port is not None, keep))
            if keep:
                _record_kept_stack(state_dir, handle, redis_url, state)
                leave_running = True
                click.echo(_kept_banner(state, flower_auth, generated, handle.process.pid, plan.store_id, intake_token))
            if summary.unsettled():
                _say(f"timed out after {settle_timeout:g}s with jobs still unsettled")
                sys.exit(EXIT_FAULT)
        except StackError as exc:
            _say(f"error: {exc}")
            sys.exit(EXIT_FAULT)
        except KeyboardInterrupt:
            _say("\ninterrupted")
            if keep and handle.process.poll() is None and (handle.state() or {}).get("phase") == "ready":
                _record_kept_stack(state_dir, handle, redis_url, handle.state() or {})
                leave_running = True
                _say(f"--keep: the stack is left running; stop it with: payq demo --stop --state-dir {state_dir}")
            sys.exit(130)
        finally:
            if not leave_running:
                _say("stopping the stack …")
                code = handle.stop()
                if code != 0:
                    _say(f"the stack reported a failure; logs kept in {run_dir}")


def _run(settings: Settings, redis_url: str, plan: DemoPlan, handle: StackHandle, settle_timeout: float) -> Summary:
    """Enqueue the plan, follow it until every job has settled (or the timeout), and gather the summary."""
    run_settings = Settings(redis_url=redis_url)
    rt = Stores.build(run_settings)
    producer = Producer(run_settings, rt.redis)
    tracker = Tracker(rt.redis)
    started = time.monotonic()
    for operation, fields in plan.first_jobs():
        if operation == "cancel":
            tracker.track([producer.enqueue_cancel(**fields)])
        elif operation == "refund":
            tracker.track([producer.enqueue_refund(**fields)])
        else:
            tracker.track([producer.enqueue_capture(**fields)])
    _say(f"enqueued {len(tracker.ids)} jobs for {len(plan.trips)} trips in store {plan.store_id} "
         f"({plan.count('capture') + plan.count('unknown')} captures, {plan.count('cancel')} cancels, "
         f"{plan.count('refund')} refunds enqueued with their captures: each waits until its capture has succeeded)")
    progress = Progress()
    deadline = started + settle_timeout
    try:
        while True:
            snapshot = tracker.poll()
            restarts = _restarts(handle)
            progress.show(progress_line(snapshot, _worker_restarts(restarts), time.monotonic() - started))
            if handle.process.poll() is not None:
                error = (handle.state() or {}).get("error") or log_tail(handle.spec.run_dir / "supervisor.log")
                raise StackError(f"the stack stopped: {error}")
            settled = snapshot.all_settled() and len(snapshot.records) == len(tracker.ids)
            if settled or time.monotonic() > deadline:
                break
            time.sleep(_POLL_SECONDS)
        progress.show(progress_line(snapshot, _worker_restarts(restarts), time.monotonic() - started), final=True)
    finally:
        progress.clear()
    elapsed = time.monotonic() - started
    notifications = _notifications(handle, snapshot, deadline)
    return Summary.gather(len(plan.trips), elapsed, snapshot, tracker, rt.dead_letters, _restarts(handle), notifications)


def _notifications(handle: StackHandle, snapshot: Snapshot, deadline: float) -> Notifications:
    """What the sandbox's receiver got for this run's settled jobs, once each has its event (or the deadline passes)."""
    url = (handle.state() or {}).get("services", {}).get("sandbox", {}).get("url")
    settled = {job_id for job_id in snapshot.records if snapshot.state(job_id) in SETTLED_STATES}
    session = requests.Session()
    session.trust_env = False
    seen: list[dict[str, Any]] = []
    while url:
        try:
            arrived = session.get(f"{url}/admin/notifications", timeout=5).json()["notifications"]
        except (requests.RequestException, ValueError, KeyError):
            break
        seen = [n for n in arrived if isinstance(n.get("event"), dict) and n["event"].get("data", {}).get("jobId") in settled]
        if {n["event"]["data"]["jobId"] for n in seen} >= settled or time.monotonic() > deadline + 10:
            break
        time.sleep(_POLL_SECONDS)
    session.close()
    return Notifications.of(seen, len(settled))


def _restarts(handle: StackHandle) -> dict[str, int]:
    state = handle.state() or {}
    return {name: int(s.get("restarts", 0)) for name, s in state.get("services", {}).items()}


def _worker_restarts(restarts: dict[str, int]) -> int:
    return sum(n for name, n in restarts.items() if name.startswith("worker-"))


def _stack_banner(state: dict[str, Any], redis_url: str, private: bool, pool: str, concurrency: int, processes: int,
                  elapsed: float) -> str:
    services = state["services"]
    lines = [f"stack ready in {elapsed:.1f}s (supervisor pid {state['supervisor_pid']}):"]
    lines.append(f"  redis    {redact_url(redis_url)}" + (" (private, append-only file on)" if private else " (yours)"))
    lines.append(f"  sandbox  {services['sandbox']['url']} (faults: 429, 503, 500, an unknown trip)")
    lines.append(f"  workers  {processes} x {pool} pool, concurrency {concurrency}, each restarted if it dies")
    lines.append(f"  serve    {services['serve']['url']} (the HTTP intake: POST /v1/jobs, and the console at /console/; "
                 "with --keep, a token and the console's login are printed at the end)")
    lines.append(f"  flower   {services['flower']['url']}")
    return "\n".join(lines)


def _next_steps(summary: Summary, redis_url: str, state: dict[str, Any], private: bool, keep: bool) -> str:
    dead = summary.dead_letters[0].id if summary.dead_letters else "ID"
    retried = sorted(summary.retried_jobs())
    job = next((j for j in retried if j.startswith("refund:")), retried[0] if retried else next(iter(summary.snapshot.records), "ID"))
    lead = "inspect and replay:"
    if private and not keep:
        lead = "inspect and replay (the private Redis stops with the demo: run `payq demo --keep` to try these):"
    return "\n".join([
        "",
        lead,
        f"  export PAYQ_REDIS_URL={redis_url}",
        "  payq dlq list                      # dead letters, newest first",
        f"  payq dlq show {dead}",
        f"  payq dlq replay {dead}   # same job id and idempotency key",
        f"  payq job {job}",
        "  payq stats",
        f"  Flower: {state['services']['flower']['url']}" + ("" if keep else " (while the stack runs)"),
    ])


def _kept_banner(state: dict[str, Any], flower_auth: str, generated: bool, supervisor_pid: int, store_id: str, intake_token: str) -> str:
    user, _, password = flower_auth.partition(":")
    shown = password if generated else "(from PAYQ_FLOWER_BASIC_AUTH)"
    serve_url = state["services"]["serve"]["url"]
    job = json.dumps({"operation": "capture", "storeId": store_id, "shoppingTripId": "curl-1", "amount": {"amount": 19.99, "code": "USD"}})
    return "\n".join([
        "",
        f"the stack is left running (supervisor pid {supervisor_pid}):",
        f"  Flower   {state['services']['flower']['url']}   user {user}   password {shown}",
        f"  sandbox  {state['services']['sandbox']['url']}",
        f"  serve    {serve_url}   token {intake_token} (store {store_id})",
        f"    curl -H 'Authorization: Bearer {intake_token}' -d '{job}' {serve_url}/v1/jobs",
        f"  console  {serve_url}/console/   user {user}   password {shown}   (dead letters, jobs, trips, endpoint pauses)",
        "  stop it with: payq demo --stop",
    ])


def _record_kept_stack(state_dir: Path, handle: StackHandle, redis_url: str, state: dict[str, Any]) -> None:
    """Remember the kept stack for ``payq demo --stop`` (no secrets: the password is only printed)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / KEPT_STACK_FILE).write_text(json.dumps({
        "supervisor_pid": handle.process.pid,
        "run_dir": str(handle.spec.run_dir),
        "redis_url": redis_url,
        "services": {name: s.get("url") for name, s in state.get("services", {}).items()},
        "started_at": time.time(),
    }, indent=2))
