"""Scenario 7: the HTTP intake, ``payq serve``, against the Python producer and ``payq enqueue --file`` in the same run.

A real ``payq serve`` (uvicorn, one process) on a free port, on the
benchmark's Redis, with a token for the benchmark's store. The load comes
from :mod:`benchmarks.httpload`, a thin asyncio HTTP/1.1 client in a process
of its own with a fixed number of keep-alive connections, so that on two
cores the server, Redis and the client each have their CPU measured and the
client takes as little as it can. Every job is a capture of its own trip.

- single: ``POST /v1/jobs``, one capture a request, back to back on
  :data:`SINGLE_CONNECTIONS` connections (enough to keep the server's one
  event loop busy: more only queue);
- batch: ``POST /v1/jobs/batch`` of :data:`BATCH` captures, on :data:`BATCH_CONNECTIONS`;
- latency: single POSTs at a steady :data:`RATE` a second, open loop (each due
  at its time whatever the answers before it), on up to :data:`LATENCY_CONNECTIONS`.

Each part starts on an empty Redis and checks that every job was answered
202 and is on the capture queue. No worker runs: this is the intake and Redis
alone, as scenario 2 is the producer and Redis alone. Scenario 2's figures
(single ``Producer.enqueue``, bulk ``Producer.publish``, the CLI) are taken
from the same run, measured then if scenario 2 did not run.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import publish
from benchmarks.enqueue import run_enqueue
from benchmarks.figures import summary_ms
from benchmarks.processes import REPO_ROOT, ServeProc, cpu_seconds
from benchmarks.report import Row, fmt
from benchmarks.stack import Stack
from benchmarks.workers import clean_env
from payq.serve.access import digest, new_token
from tasks.store import lanes

BATCH = 1000             # jobs per batch POST: the most /v1/jobs/batch takes
RATE = 200.0             # requests a second for the latency figures
SINGLE_CONNECTIONS = 16
BATCH_CONNECTIONS = 2    # one batch validated (in the server's thread pool) while the other is written to Redis
LATENCY_CONNECTIONS = 16


@dataclass(frozen=True)
class IntakeSizes:
    """How much work the intake scenario does."""

    single: int             # single-job POSTs timed
    batches: int            # batch POSTs of BATCH jobs timed
    latency_seconds: float  # seconds of POSTs at RATE a second
    enqueue_single: int     # scenario 2's counts, if it is measured here
    enqueue_bulk: int


FULL = IntakeSizes(single=20_000, batches=40, latency_seconds=20, enqueue_single=5_000, enqueue_bulk=20_000)
QUICK = IntakeSizes(single=3_000, batches=10, latency_seconds=6, enqueue_single=2_000, enqueue_bulk=10_000)


def run_intake(stack: Stack, sizes: IntakeSizes, *, enqueue: dict[str, Any] | None = None, say: Any = print) -> dict[str, Any]:
    """The intake's figures beside the producer's and the CLI's (``enqueue``: scenario 2's figures from this run, if it ran)."""
    token = new_token()
    serve = ServeProc(stack.redis_url, {"PAYQ_INTAKE_TOKENS": json.dumps({digest(token): [publish.STORE]})})
    tag = uuid.uuid4().hex[:6]
    base = {"host": "127.0.0.1", "port": serve.port, "token": token, "store": publish.STORE}
    try:
        _warm_up(stack, serve, {**base, "tag": f"w{tag}"})
        single = _part(stack, serve, {**base, "shape": "closed", "jobs": sizes.single, "connections": SINGLE_CONNECTIONS,
                                      "tag": f"h{tag}"}, sizes.single)
        say(f"  intake: single POSTs {single['rate']:.0f} jobs/s on {SINGLE_CONNECTIONS} connections "
            f"(server {single['server_cpu_ms_per_job']:.2f} ms CPU/job, client {single['client_cpu_ms_per_job']:.2f})")
        batch = _part(stack, serve, {**base, "shape": "closed", "batches": sizes.batches, "size": BATCH,
                                     "connections": BATCH_CONNECTIONS, "tag": f"k{tag}"}, sizes.batches * BATCH)
        say(f"  intake: batches of {BATCH:,} {batch['rate']:.0f} jobs/s on {BATCH_CONNECTIONS} connections "
            f"(server {batch['server_cpu_ms_per_job']:.3f} ms CPU/job)")
        count = int(RATE * sizes.latency_seconds)
        latency = _part(stack, serve, {**base, "shape": "open", "jobs": count, "rate": RATE, "connections": LATENCY_CONNECTIONS,
                                       "tag": f"o{tag}"}, count)
        say(f"  intake: at {RATE:g} req/s p50 {latency['latency']['p50_ms']} ms, p99 {latency['latency']['p99_ms']} ms "
            f"(server {latency['server_cores']:.2f} cores)")
    finally:
        serve.stop()
        stack.client.flushall()
    if enqueue is None:
        enqueue = run_enqueue(stack, sizes.enqueue_single, sizes.enqueue_bulk, say=say)
    return {"sizes": asdict(sizes), "server": _server(), "batch_size": BATCH, "rate": RATE, "single": single, "batch": batch, "latency": latency,
            "producer": enqueue}


def _server() -> str:
    """What uvicorn serves with, as it picks them (``http="auto"``, ``loop="auto"``) in this interpreter: httptools and uvloop if installed."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop}"


def _warm_up(stack: Stack, serve: ServeProc, spec: dict[str, Any]) -> None:
    """A few single and batch POSTs first: the server's imports, its Redis connections and script are ready before timing."""
    _load({**spec, "shape": "closed", "jobs": 200, "connections": 4})
    _load({**spec, "shape": "closed", "batches": 2, "size": BATCH, "connections": 2, "tag": spec["tag"] + "b"})


def _part(stack: Stack, serve: ServeProc, spec: dict[str, Any], jobs: int) -> dict[str, Any]:
    """Run one load on an empty Redis; its throughput, latency and CPU per job of the server, Redis and the client."""
    stack.client.flushall()
    pids = serve.pids()
    server0, redis0, started = cpu_seconds(pids), cpu_seconds([stack.redis.pid]), time.monotonic()
    answer = _load(spec)
    server_s, redis_s = cpu_seconds(pids) - server0, cpu_seconds([stack.redis.pid]) - redis0
    wall = time.monotonic() - started  # the client's start-up too: the server is idle meanwhile
    queued = lanes.depths(stack.client, ["payments.capture"])["payments.capture"]
    accepted = answer["statuses"].get("202", 0) * spec.get("size", 1)
    if answer["failures"] or accepted != jobs or queued != jobs:
        raise RuntimeError(f"intake load {spec['shape']}: {accepted} of {jobs} jobs accepted, {queued} queued; "
                           f"answers {answer['statuses']}: {answer['failures']}")
    seconds = answer["seconds"]
    result: dict[str, Any] = {
        "jobs": jobs, "requests": answer["requests"], "connections": spec["connections"], "seconds": round(seconds, 3),
        "rate": round(jobs / seconds, 1), "requests_per_s": round(answer["requests"] / seconds, 1),
        "latency": summary_ms(answer["latencies"]),
        "server_cpu_ms_per_job": round(server_s * 1000 / jobs, 3), "redis_cpu_ms_per_job": round(redis_s * 1000 / jobs, 3),
        "client_cpu_ms_per_job": round(answer["client_cpu_s"] * 1000 / jobs, 3),
        "server_cores": round(server_s / max(seconds, 1e-9), 2), "wall_s": round(wall, 2),
    }
    if spec["shape"] == "open":
        result.update({"target_rate": spec["rate"], "latency_from_sent": summary_ms(answer["latencies_from_sent"]),
                       "sender_late": summary_ms(answer["sender_late"]), "most_in_flight": answer["most_in_flight"]})
    return result


def _load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :mod:`benchmarks.httpload` with ``spec`` in a process of its own; its JSON answer."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.httpload", json.dumps(spec)], cwd=REPO_ROOT, env=clean_env(),
                          capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    answer["statuses"] = {str(k): v for k, v in answer["statuses"].items()}
    return answer


def rows(figures: dict[str, Any]) -> list[Row]:
    """The report's rows for this scenario."""
    single, batch, latency, producer = figures["single"], figures["batch"], figures["latency"], figures["producer"]
    section = (f"7. HTTP intake: payq serve (one uvicorn process, {figures.get('server', '?')}) and Redis; "
               "keep-alive clients in a process of their own; beside them the producer and the CLI, same run")
    rate_p99 = latency["latency"]["p99_ms"]
    return [
        Row(section, f"single POST /v1/jobs ({single['jobs']:,}, {single['connections']} connections)", fmt(single["rate"], "jobs/s"),
            "≥ 1,500 jobs/s", single["rate"] >= 1500),
        Row(section, "  answer p50 / p99 at that load", f"{fmt(single['latency']['p50_ms'], '', 1)} / {fmt(single['latency']['p99_ms'], 'ms', 1)}"),
        Row(section, "  CPU per job: server / Redis / client",
            f"{single['server_cpu_ms_per_job']:.3f} / {single['redis_cpu_ms_per_job']:.3f} / {single['client_cpu_ms_per_job']:.3f} ms"),
        Row(section, f"batch POST /v1/jobs/batch of {figures['batch_size']:,} ({batch['requests']} batches, {batch['connections']} connections)",
            fmt(batch["rate"], "jobs/s"), "≥ 10,000 jobs/s", batch["rate"] >= 10_000,
            f"one server process at {batch['server_cpu_ms_per_job']:.3f} ms of CPU a job tops out at "
            f"{fmt(1000 / max(batch['server_cpu_ms_per_job'], 1e-6))} jobs/s, before Redis and the clients take their share of the cores"),
        Row(section, "  CPU per job: server / Redis / client",
            f"{batch['server_cpu_ms_per_job']:.3f} / {batch['redis_cpu_ms_per_job']:.3f} / {batch['client_cpu_ms_per_job']:.3f} ms"),
        Row(section, f"single POSTs at a steady {latency['target_rate']:g} req/s, open loop ({latency['jobs']:,}): p50",
            fmt(latency["latency"]["p50_ms"], "ms", 1)),
        Row(section, "  p99 (from each request's due time)", fmt(rate_p99, "ms", 1), "< 20 ms", rate_p99 < 20),
        Row(section, "  p50 / p99 from the request's write (the client's own lag left out)",
            f"{fmt(latency['latency_from_sent']['p50_ms'], '', 1)} / {fmt(latency['latency_from_sent']['p99_ms'], 'ms', 1)}"),
        Row(section, "  server CPU per request; most requests in flight",
            f"{latency['server_cpu_ms_per_job']:.3f} ms; {latency['most_in_flight']}"),
        Row(section, f"single Producer.enqueue calls ({producer['single']['jobs']:,}, one thread)", fmt(producer["single"]["rate"], "jobs/s")),
        Row(section, f"bulk Producer.publish of prepared jobs ({producer['bulk_publish']['jobs']:,})", fmt(producer["bulk_publish"]["rate"], "jobs/s")),
        Row(section, f"payq enqueue --file ({producer['cli_file']['jobs']:,} lines, wall time)", fmt(producer["cli_file"]["rate"], "jobs/s")),
        Row(section, "others' CPU load on this shared machine meanwhile", f"{figures.get('other_load_cores', 0):.2f} cores"),
    ]
