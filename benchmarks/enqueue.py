"""Scenario 2: how fast one producer process enqueues: single ``Producer.enqueue`` calls, bulk ``publish``, the CLI.

No worker runs meanwhile, so this is the producer and Redis alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import publish
from benchmarks.processes import REPO_ROOT
from benchmarks.stack import Stack
from benchmarks.workers import clean_env
from config.settings import Settings
from tasks.producer import Producer
from tasks.store import lanes


def run_enqueue(stack: Stack, single: int, bulk: int, say: Any = print) -> dict[str, Any]:
    """Time ``single`` one-at-a-time enqueues, ``bulk`` prepared jobs published in chunks, and the CLI on a ``bulk``-line file."""
    stack.client.flushall()
    producer = Producer(Settings(redis_url=stack.redis_url))
    tag = uuid.uuid4().hex[:6]

    trip_ids = publish.trips(f"s{tag}", single)
    producer.enqueue("capture", publish.capture_fields("warm-up"))  # connect and load the script first
    started = time.perf_counter()
    for trip in trip_ids:
        producer.enqueue("capture", publish.capture_fields(trip))
    single_s = time.perf_counter() - started
    assert lanes.depths(stack.client, ["payments.capture"]) == {"payments.capture": single + 1}

    stack.client.flushall()
    started = time.perf_counter()
    jobs = publish.payq_captures(publish.trips(f"b{tag}", bulk))
    prepared_s = time.perf_counter() - started
    started = time.perf_counter()
    publish.payq_publish(producer, jobs)
    publish_s = time.perf_counter() - started
    assert lanes.depths(stack.client, ["payments.capture"]) == {"payments.capture": bulk}

    stack.client.flushall()
    cli = _time_cli(stack.redis_url, bulk, f"c{tag}")
    assert lanes.depths(stack.client, ["payments.capture"]) == {"payments.capture": bulk}
    stack.client.flushall()

    result = {
        "single": {"jobs": single, "seconds": round(single_s, 3), "rate": round(single / single_s, 1),
                   "us_per_job": round(single_s / single * 1e6, 1)},
        "bulk_publish": {"jobs": bulk, "seconds": round(publish_s, 3), "rate": round(bulk / publish_s, 1)},
        "bulk_prepare_and_publish": {"jobs": bulk, "seconds": round(prepared_s + publish_s, 3),
                                     "rate": round(bulk / (prepared_s + publish_s), 1)},
        "cli_file": cli,
    }
    say(f"  enqueue: single {result['single']['rate']:.0f}/s, bulk publish {result['bulk_publish']['rate']:.0f}/s, "
        f"prepare+publish {result['bulk_prepare_and_publish']['rate']:.0f}/s, CLI {cli['rate']:.0f}/s "
        f"({cli['startup_s']:.2f}s start-up)")
    return result


def _time_cli(redis_url: str, count: int, tag: str) -> dict[str, Any]:
    """``payq enqueue --file`` on a generated file: wall time including interpreter start-up, and start-up alone."""
    with tempfile.TemporaryDirectory(prefix="payq-bench-cli-") as tmp:
        path = Path(tmp) / "jobs.jsonl"
        with path.open("w") as out:
            for trip in publish.trips(tag, count):
                out.write(json.dumps({"operation": "capture", **publish.capture_fields(trip)}) + "\n")
        env = clean_env(PAYQ_REDIS_URL=redis_url)
        command = [sys.executable, "-c", "from payq.cli import main; main()"]
        started = time.perf_counter()
        subprocess.run([*command, "--version"], cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL, timeout=60)
        startup = time.perf_counter() - started
        started = time.perf_counter()
        done = subprocess.run([*command, "enqueue", "--file", str(path)], cwd=REPO_ROOT, env=env, check=False,
                              capture_output=True, timeout=300)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"payq enqueue --file exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    printed = len(done.stdout.split())
    return {"jobs": count, "ids_printed": printed, "seconds": round(elapsed, 3), "startup_s": round(startup, 3),
            "rate": round(count / elapsed, 1), "rate_after_startup": round(count / max(elapsed - startup, 1e-9), 1)}
