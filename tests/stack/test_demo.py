"""``payq demo`` end to end, as a person runs it: a real subprocess, real Redis, sandbox, worker and Flower.

Every process the demo starts inherits an environment marker, so the tests can
prove that none is left behind (and, with ``--keep``, that they are).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
import requests

from payq.stack.plan import UNKNOWN_TRIP, DemoPlan
from tests.stack.procs import MARKER_VARIABLE, alive, on_linux, processes_with
from tests.support.payq_cli import payq_command
from tests.support.polling import wait_for
from tests.support.ports import free_port

pytestmark = pytest.mark.skipif(not on_linux(), reason="finds leftover processes through /proc")

REPO = Path(__file__).resolve().parents[2]
# generous: four test processes share two cores in CI
SUBPROCESS_TIMEOUT = 280


def payq() -> list[str]:
    """The ``payq`` console script of this environment."""
    return payq_command()


def demo_env(marker: str, **extra: str) -> dict[str, str]:
    """A clean environment (no PAYQ_* or FLOWER_* from the caller) carrying the process marker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYQ_", "FLOWER_"))}
    env.update({MARKER_VARIABLE: marker, "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def demo_options(tmp_path: Path) -> list[str]:
    """Free ports and timeouts that suit a loaded CI machine."""
    return [
        "--sandbox-port", str(free_port()), "--flower-port", str(free_port()), "--serve-port", str(free_port()),
        "--timeout", "150", "--startup-timeout", "90", "--state-dir", str(tmp_path / "state"),
    ]


@pytest.mark.slow
def test_the_demo_settles_every_job_prints_its_summary_and_leaves_no_process(redis_url: str, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    result = subprocess.run(
        [*payq(), "demo", *demo_options(tmp_path)], cwd=tmp_path, env=demo_env(marker, PAYQ_REDIS_URL=redis_url),
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{err[-4000:]}"
    assert "using Redis at" in err, "an answering PAYQ_REDIS_URL is used, not a private redis-server"

    plan = DemoPlan.build(100, "x")
    captured = plan.count("capture")
    jobs = captured * 2 + plan.count("unknown") + plan.count("cancel") + plan.count("refund")
    assert f"100 trips, {jobs} jobs, all {jobs} settled in" in out
    assert re.search(rf"succeeded\s+{jobs - 1}\s+{captured} captures, {captured} payment-status reports, "
                     rf"{plan.count('cancel')} cancels, {plan.count('refund')} refunds", out), out
    retried = re.search(r"retried\s+(\d+)\s+jobs, (\d+) retries in all:", out)
    assert retried is not None and int(retried.group(1)) >= 4, out
    for cause in ("HTTP 429 Too Many Requests: retried after the 3s the API asked for",
                  "HTTP 503 Service Unavailable: retried after the 2s the API asked for",
                  "HTTP 500 Internal Server Error: exponential backoff"):
        assert cause in out
    notified = re.search(r"notified\s+(\d+)\s+of (\d+) settled jobs: (\d+) events at the sandbox's receiver .*, (\d+) with a valid signature", out)
    assert notified is not None, out
    assert [int(g) for g in notified.groups()] == [jobs] * 4, "one signed event for every job, at the sandbox's receiver"
    assert re.search(r"dead-lettered\s+1\s+jobs:\n\s+1\s+permanent \(HTTP 400\): UnknownShoppingTrip", out), out
    for command in ("payq dlq list", "payq dlq replay capture:", "payq job ", "Flower: http://127.0.0.1:"):
        assert command in out

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    entries = [json.loads(raw) for raw in client.hvals("payq:dlq")]
    assert [(e["operation"], e["kwargs"]["shoppingTripId"], e["reason"]) for e in entries] == [("capture", UNKNOWN_TRIP, "permanent")]
    assert processes_with(marker) == {}, "the demo stopped everything it started"


@pytest.mark.slow
def test_keep_leaves_a_supervised_stack_with_flower_behind_basic_auth_and_stop_ends_it(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = demo_env(marker)  # no PAYQ_REDIS_URL: the demo starts its own redis-server
    state_dir = tmp_path / "state"
    service_pids: dict[str, int] = {}
    try:
        result = subprocess.run([*payq(), "demo", "--keep", "--trips", "12", "--processes", "2", *demo_options(tmp_path)],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
        assert "(private, append-only file on)" in result.stderr
        flower = re.search(r"Flower\s+(http://\S+)\s+user (\S+)\s+password (\S+)", result.stdout)
        assert flower is not None, result.stdout
        url, user, password = flower.groups()

        kept = json.loads((state_dir / "demo.json").read_text())
        stack_state = Path(kept["run_dir"]) / "stack.json"
        service_pids = {name: s["pid"] for name, s in json.loads(stack_state.read_text())["services"].items()}
        assert sorted(service_pids) == ["flower", "redis", "sandbox", "serve", "worker-1", "worker-2"]
        assert all(alive(pid) for pid in service_pids.values()), "the stack outlives the demo"
        # redis-server rewrites its argv and environ area, so the marker finds the others only
        commands = " | ".join(processes_with(marker).values())
        for part in ("payq.stack", "-m sandbox", "workers.app worker", "workers.app flower", "-m payq.serve"):
            assert part in commands
        assert password not in commands, "Flower's credentials travel by environment, never argv"

        session = requests.Session()
        session.trust_env = False
        assert session.get(url + "/", timeout=10).status_code == 401
        assert session.get(url + "/", auth=(user, password), timeout=10).status_code == 200
        console = re.search(r"console\s+(http://\S+/console/)\s+user (\S+)\s+password (\S+)", result.stdout)
        assert console is not None, result.stdout
        assert session.get(console.group(1), timeout=10).status_code == 401
        assert session.get(console.group(1), auth=(console.group(2), console.group(3)), timeout=10).status_code == 200

        # the intake serves the demo's store with the token the banner printed (and the token is not on any command line)
        intake = re.search(r"serve\s+(http://\S+)\s+token (\S+) \(store (\S+)\)", result.stdout)
        assert intake is not None, result.stdout
        serve_url, token, store = intake.groups()
        assert token not in commands
        job = {"operation": "cancel", "storeId": store, "shoppingTripId": "from-the-banner"}
        answer = session.post(serve_url + "/v1/jobs", json=job, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert (answer.status_code, answer.json()) == (202, {"jobId": f"cancel:{store}:from-the-banner", "created": True})

        # supervised after the demo has exited: a killed worker comes back
        worker = service_pids["worker-2"]
        os.kill(worker, signal.SIGKILL)

        def worker_restarted() -> dict[str, int] | None:
            info = json.loads(stack_state.read_text())["services"]["worker-2"]
            return info if info["restarts"] == 1 and info["pid"] != worker else None
        restarted = wait_for(worker_restarted, timeout=30, what="the supervisor to restart the killed worker")
        assert alive(restarted["pid"])
    finally:
        stop = subprocess.run([*payq(), "demo", "--stop", "--state-dir", str(state_dir)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0, stop.stderr
    wait_for(lambda: processes_with(marker) == {}, timeout=30, what="every process of the kept stack to stop")
    assert not any(alive(pid) for pid in service_pids.values())
    assert not (state_dir / "demo.json").exists()


def test_without_redis_the_demo_says_in_one_line_how_to_install_it(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    empty = tmp_path / "bin"
    empty.mkdir()
    env = demo_env(marker, PATH=str(empty), PAYQ_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")

    result = subprocess.run([*payq(), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "does not answer; starting a private redis-server" in lines[0]
    assert lines[-1].startswith("redis-server is not on PATH: install it") and "apt-get install redis-server" in lines[-1]
    assert len(lines) == 2
    assert result.stdout == ""
    assert processes_with(marker) == {}


@pytest.mark.slow
def test_the_demo_will_not_hand_its_jobs_to_other_workers_on_a_shared_redis(redis_url: str, start_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    start_worker(name="someone-else")
    marker = uuid.uuid4().hex

    result = subprocess.run([*payq(), "demo", *demo_options(tmp_path)], cwd=tmp_path, env=demo_env(marker, PAYQ_REDIS_URL=redis_url),
                            capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)

    assert result.returncode == 1
    assert "other payq workers consume this Redis (someone-else@" in result.stderr
    assert redis.Redis.from_url(redis_url).keys("payq:job:*") == [], "nothing was enqueued"
    assert processes_with(marker) == {}
