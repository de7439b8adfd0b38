"""Draw the Grafana dashboard's queries from a real run: the picture in docs/operating.md.

Grafana cannot run here, so this draws each panel of
``deploy/prometheus/payq-dashboard.json`` with matplotlib, from what a real
Prometheus (Debian's ``prometheus``) recorded while it scraped ``payq metrics``
and evaluated ``deploy/prometheus/payq-rules.yml``::

    .venv/bin/python scripts/render_dashboard.py            # a run of about 8 minutes, then docs/images/dashboard.png
    .venv/bin/python scripts/render_dashboard.py --minutes 4 --out /tmp/dashboard.png
    .venv/bin/python scripts/render_dashboard.py --prometheus http://127.0.0.1:9090 --since 30m   # draw only

The run: ``payq demo --keep`` (private Redis, sandbox, 2 workers, ``payq serve``)
with ``PAYQ_RATE_LIMITS`` capture 40/s; ``payq metrics``; Prometheus scraping it
every 5 s; captures through the intake at about 12 a second (with a few
refusals), and on the way the API throttles captures at 10/s (a quarter in),
some captures are refused as unknown trips (half-way), and one worker process
is killed (three quarters in; its supervisor starts another).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = PROMETHEUS_DIR / "payq-dashboard.json"
OUT = REPO / "docs" / "images" / "dashboard.png"
BIN = Path(sys.executable).parent
STEP = 5  # seconds: the scrape and rule interval of the run, and the step of every query
PER_SECOND = 12  # captures a second through the intake, in one batch each second
UNITS = {"reqps": "per second", "s": "seconds", "short": ""}


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Any, timeout: float, what: str) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if check():
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


@contextlib.contextmanager
def demo(workdir: Path) -> Iterator[dict[str, Any]]:
    """``payq demo --keep`` on a private Redis: its services' addresses, the intake's token and store; stopped on the way out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
    env.update({"PAYQ_RATE_LIMITS": json.dumps({"capture": 40}), "PAYQ_WORKER_PROCESSES": "2"})
    state_dir = workdir / "state"
    ran = subprocess.run([str(BIN / "payq"), "demo", "--keep", "--trips", "50", "--state-dir", str(state_dir)],
                         cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    try:
        if ran.returncode != 0:
            raise SystemExit(f"payq demo failed ({ran.returncode}):\n{ran.stderr[-3000:]}")
        found = re.search(r"token (\S+) \(store (\S+)\)", ran.stdout + ran.stderr)
        if found is None:
            raise SystemExit(f"no intake token in payq demo's banner:\n{ran.stdout[-3000:]}")
        kept = json.loads((state_dir / "demo.json").read_text())
        yield {**kept, "token": found.group(1), "store": found.group(2), "env": env}
    finally:
        subprocess.run([str(BIN / "payq"), "demo", "--stop", "--state-dir", str(state_dir)], cwd=workdir, env=env,
                       capture_output=True, timeout=120)


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the run, stopped (SIGTERM, then SIGKILL) on the way out."""
    with log.open("wb") as out:
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def prometheus_config(workdir: Path, metrics_port: int) -> Path:
    """Prometheus's configuration for the run: payq's rules, ``payq metrics`` scraped every :data:`STEP` seconds as job payq."""
    path = workdir / "prometheus.yml"
    path.write_text(json.dumps({
        "global": {"scrape_interval": f"{STEP}s", "evaluation_interval": f"{STEP}s"},
        "rule_files": [str(PROMETHEUS_DIR / "payq-rules.yml")],
        "scrape_configs": [{"job_name": "payq", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))
    return path


def load(stack: dict[str, Any], seconds: float) -> None:
    """Captures through the intake for ``seconds``, about :data:`PER_SECOND` a second, with the run's faults on the way (see the module's text)."""
    serve, sandbox = stack["services"]["serve"], stack["services"]["sandbox"]
    session = requests.Session()
    session.trust_env = False
    headers = {"Authorization": f"Bearer {stack['token']}"}
    started = time.monotonic()
    phase = 0
    n = 0
    while (elapsed := time.monotonic() - started) < seconds:
        if phase == 0 and elapsed > seconds / 4:
            phase = 1  # the API throttles captures at 10/s: 429s, a pause, a learned pace under the configured 40
            session.post(f"{sandbox}/admin/faults", json={"rules": [], "rate_limits": {"capture": {"per_second": 10, "retry_after": 5}}})
        elif phase == 1 and elapsed > seconds / 2:
            phase = 2  # the limit lifted; one capture in 20 is for a trip the API does not know: permanent dead letters
            unknown = {"status": 400, "headers": {"x-amzn-ErrorType": "UnknownShoppingTrip"}, "body": {"errorMsg": "UnknownShoppingTrip"}}
            session.post(f"{sandbox}/admin/faults", json={"rules": [{"endpoint": "capture", "probability": 0.05, "fault": unknown}]})
        elif phase == 2 and elapsed > 3 * seconds / 4:
            phase = 3
            kill_one_worker(stack)
        jobs = [{"operation": "capture", "storeId": stack["store"], "shoppingTripId": f"dash-{n + i}",
                 "amount": {"amount": "12.50", "code": "USD"}} for i in range(PER_SECOND)]
        n += len(jobs)
        session.post(f"{serve}/v1/jobs/batch", json={"jobs": jobs}, headers=headers, timeout=10)
        if n % (20 * PER_SECOND) == 0:  # a store backend's mistakes: a refused token, an invalid amount
            session.post(f"{serve}/v1/jobs", json=jobs[0], timeout=10)
            session.post(f"{serve}/v1/jobs", json={**jobs[0], "amount": {"amount": "ten", "code": "USD"}}, headers=headers, timeout=10)
        time.sleep(max(0.0, started + n / PER_SECOND - time.monotonic()))


def kill_one_worker(stack: dict[str, Any]) -> None:
    """SIGKILL one of the demo's worker processes, found by its heartbeat's id (host.pid.random); the supervisor starts another."""
    import redis

    client = redis.Redis.from_url(stack["redis_url"], decode_responses=True)
    latest = client.zrevrange("payq:workers", 0, 0)
    client.close()
    if latest:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(latest[0].split(".")[-2]), signal.SIGKILL)


def query_range(prometheus: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    """``/api/v1/query_range`` for ``expr``: its series, each with its labels and [time, value] pairs."""
    answer = requests.get(f"{prometheus}/api/v1/query_range", params={"query": expr, "start": start, "end": end, "step": STEP}, timeout=30)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legend format: ``{{label}}`` replaced by the series' label."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def render(prometheus: str, start: float, end: float, out: Path) -> None:
    """Draw every panel of the dashboard, two a row as in Grafana, from ``prometheus`` between ``start`` and ``end``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p.get("targets")]
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(14, 3.1 * rows), sharex=True)
    for ax, panel in zip(axes.flat, panels, strict=False):
        ax.set_title(panel["title"], fontsize=9, loc="left")
        for target in panel["targets"]:
            for series in query_range(prometheus, target["expr"], start, end):
                minutes = [(float(t) - start) / 60 for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                ax.plot(minutes, values, linewidth=1, label=legend(target.get("legendFormat", ""), series["metric"]))
        ax.set_ylabel(UNITS.get(panel["fieldConfig"]["defaults"].get("unit", ""), ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        if ax.has_data():
            ax.legend(fontsize=6, loc="upper left", ncol=2)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("minutes into the run", fontsize=8)
    fig.suptitle("payq dashboard (deploy/prometheus/payq-dashboard.json), drawn from Prometheus by scripts/render_dashboard.py", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"wrote {out}", file=sys.stderr)


def run(minutes: float, out: Path) -> None:
    """The whole run (see the module's text), then the picture."""
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        raise SystemExit("prometheus is not on PATH: bash scripts/system-deps.sh installs it (Debian's prometheus package)")
    with tempfile.TemporaryDirectory(prefix="payq-dashboard-") as tmp, demo(Path(tmp)) as stack:
        workdir = Path(tmp)
        env = {**stack["env"], "PAYQ_REDIS_URL": stack["redis_url"]}
        metrics_port, prometheus_port = free_port(), free_port()
        prometheus = f"http://127.0.0.1:{prometheus_port}"
        with process([str(BIN / "payq"), "metrics", "--port", str(metrics_port)], env, workdir / "metrics.log"), \
             process([prometheus_bin, f"--config.file={prometheus_config(workdir, metrics_port)}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                      f"--web.listen-address=127.0.0.1:{prometheus_port}"], env, workdir / "prometheus.log"):
            wait_until(lambda: requests.get(f"{prometheus}/-/ready", timeout=2).ok, 60, "Prometheus to be ready")
            start = time.time()
            load(stack, minutes * 60)
            time.sleep(2 * STEP)  # the last scrape and rule evaluation
            render(prometheus, start, time.time(), out)


def main() -> None:
    """Parse the command line; run, or only draw."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=8, help="length of the run (default 8)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the PNG (default {OUT.relative_to(REPO)})")
    parser.add_argument("--prometheus", help="draw only, from this Prometheus (its URL), the last --since")
    parser.add_argument("--since", default="30m", help="with --prometheus: how far back, e.g. 30m, 2h (default 30m)")
    args = parser.parse_args()
    if args.prometheus:
        seconds = float(args.since[:-1]) * {"s": 1, "m": 60, "h": 3600}[args.since[-1]]
        render(args.prometheus.rstrip("/"), time.time() - seconds, time.time(), args.out)
    else:
        run(args.minutes, args.out)


if __name__ == "__main__":
    main()
