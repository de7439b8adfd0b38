"""Scenario 8, secrets: no password, key, token or signing secret appears anywhere an operator, a store backend or a log reads.

Redis requires a password (it is in ``PAYQ_REDIS_URL``), the worker signs
every API call with SigV4 (``AWS_SECRET_ACCESS_KEY``, checked by the sandbox)
and every outcome notification with ``PAYQ_NOTIFY_SECRET`` (the sandbox is the
receiver and checks them), ``PAYQ_FLOWER_BASIC_AUTH`` is set in its
environment, and ``payq serve`` runs with a store's intake token and the
console's password, as in production; the worker and ``payq serve`` trace,
exporting their spans to an OTLP receiver. Jobs
succeed, retry, wait deferred and are dead-lettered; then every place their
data shows up is searched for each secret and for its first and last 12
characters (a truncated secret has leaked too).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from config.settings import Settings
from payapi.operations import QUEUES
from tasks.producer import Producer
from tasks.redis import keys
from tasks.store import lanes
from tests.faults.audit import records
from tests.faults.report import Figures, Recorder
from tests.support.fault_redis import FaultRedis
from tests.support.fault_workers import FaultWorker
from tests.support.flower import FlowerProcess, wait_until_watched
from tests.support.otlp import OtlpReceiver, otel_env
from tests.support.payq_cli import run_payq
from tests.support.polling import wait_for
from tests.support.ports import free_port
from tests.support.sandbox import SandboxProcess
from tests.support.serve import ServeProcess

REDIS_PASSWORD = "payq-redis-pw-Vq8Lr2Nc6Tz4Hs1K"
AWS_ACCESS_KEY = "AKIDPAYQFAULTS000001"
AWS_SECRET = "payq-aws-secret-Jm5Xw9Pd3Bq7Yt2G"
FLOWER_USER, FLOWER_PASSWORD = "ops", "payq-flower-pw-Rk4Fz8Uc1Wn6Ee3S"
NOTIFY_SECRET = "whsec_" + base64.b64encode(b"payq-notify-secret-Hq3Lz7Ks2Vd9Pw4").decode()
INTAKE_TOKEN = "payq-intake-token-Xc5Nf8Rb1Mt6Gy3J"
CONSOLE_USER, CONSOLE_PASSWORD = "console", "payq-console-pw-Ta7Jm2Qe9Lx4Bv6D"
REGION = "eu-west-1"
SECRETS = {"Redis password": REDIS_PASSWORD, "AWS secret key": AWS_SECRET, "Flower password": FLOWER_PASSWORD,
           "notification secret": NOTIFY_SECRET, "intake token": INTAKE_TOKEN, "console password": CONSOLE_PASSWORD}
USD = {"amount": "42.00", "code": "USD"}
STORE = "s-secret"


def fragments() -> dict[str, str]:
    """Each secret, its first 12 and its last 12 characters, by a name that does not reveal it."""
    return {f"{name} ({part})": piece for name, secret in SECRETS.items()
            for part, piece in (("whole", secret), ("head", secret[:12]), ("tail", secret[-12:]))}


def leaks(places: dict[str, str]) -> list[str]:
    """``fragment in place`` for every fragment found; the secret itself is never in the message."""
    return [f"{name} in {where}" for where, text in places.items() for name, piece in fragments().items() if piece in text]


def decoded(text: str) -> str:
    """``text`` followed by every base64 run in it, decoded: kombu messages and Celery events carry their bodies in base64."""
    plain = []
    for run in re.findall(r"[A-Za-z0-9+/]{16,}={0,2}", text):
        try:
            plain.append(base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8", "replace"))
        except ValueError:
            continue
    return "\n".join([text, *plain])


def redis_dump(rdb: redis.Redis) -> str:
    """Every key and value: queued messages (task kwargs), job records, deferred jobs, dead letters, the outbox."""
    parts = []
    for key in sorted(rdb.scan_iter()):
        kind = rdb.type(key)
        value: object = {
            "string": rdb.get, "hash": rdb.hgetall, "list": lambda k: rdb.lrange(k, 0, -1), "set": rdb.smembers,
            "zset": lambda k: rdb.zrange(k, 0, -1, withscores=True),
        }.get(kind, lambda k: None)(key)
        parts.append(f"{key} {value!r}")
    return "\n".join(parts)


class EventTap(threading.Thread):
    """Everything published on Redis (Celery's task and worker events, as Flower receives them) while it runs."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.pubsub = client.pubsub()
        self.pubsub.psubscribe("*")
        self.messages: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                message = self.pubsub.get_message(timeout=0.2)
            except redis.ConnectionError:
                return  # Redis went away: the test is over
            if message is not None and message["type"] == "pmessage":
                self.messages.append(str(message["data"]))

    def stop(self) -> str:
        """Stop listening; everything heard, one message a line."""
        self.stopped.set()
        self.join(timeout=5)
        self.pubsub.close()
        return "\n".join(self.messages)


def payq(redis_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``payq``, run by an operator whose shell holds every secret."""
    secrets = {"AWS_SECRET_ACCESS_KEY": AWS_SECRET, "PAYQ_FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}"}
    return run_payq(redis_url, *args, env=secrets, cwd=cwd)


@pytest.fixture
def isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """No AWS_* from the host, empty shared config files, no instance metadata; the worker's signing environment."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    (tmp_path / "aws-config").touch()
    (tmp_path / "aws-credentials").touch()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield {"PAYQ_API_AUTH": "sigv4", "PAYQ_AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "PAYQ_FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}"}


@pytest.mark.slow
@pytest.mark.timeout(600)  # pyproject's 300 s is too short on a machine other runs keep busy
def test_no_secret_reaches_logs_messages_events_flower_dead_letters_or_operator_output(
    make_sandbox: Callable[..., SandboxProcess], make_worker: Callable[..., FaultWorker], isolated_aws: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fault_report: Recorder,
) -> None:
    started = time.monotonic()
    server = FaultRedis(password=REDIS_PASSWORD)
    flower: FlowerProcess | None = None
    tap: EventTap | None = None
    serve: ServeProcess | None = None
    otlp = OtlpReceiver()  # the worker and payq serve trace (tasks/tracing.py): their spans are searched too
    try:
        with monkeypatch.context() as env:
            env.setenv("PAYQ_SANDBOX_SECRET_KEY", AWS_SECRET)  # the sandbox verifies with the same secret, from its environment
            env.setenv("PAYQ_SANDBOX_NOTIFY_SECRET", NOTIFY_SECRET)  # and receives the notifications, checking their signatures
            api = make_sandbox("--auto-register", "--require-sigv4", "--access-key", AWS_ACCESS_KEY, "--region", REGION)
        notify_env = {"PAYQ_NOTIFY_URL": f"{api.url}/admin/notifications", "PAYQ_NOTIFY_SECRET": NOTIFY_SECRET}
        serve = ServeProcess(server.url, env={
            "PAYQ_INTAKE_TOKENS": json.dumps({hashlib.sha256(INTAKE_TOKEN.encode()).hexdigest(): [STORE]}),
            "PAYQ_CONSOLE_BASIC_AUTH": f"{CONSOLE_USER}:{CONSOLE_PASSWORD}", **notify_env, **otel_env(otlp),
        })
        api.set_faults({"rules": [
            {"endpoint": "cancel", "fault": {"status": 400, "body": {"errorMsg": "BadRequestException: refused"}}},  # dead letter
            {"endpoint": "capture", "shoppingTripId": "t-retry", "sequence": ["reset", "500"]},                    # retries, then success
            {"endpoint": "refund", "fault": "503 retryAfter 600"},                                                  # waits deferred
        ]})
        rdb = server.client()
        tap = EventTap(server.client())
        tap.start()
        flower = FlowerProcess(server.url, auth=(FLOWER_USER, FLOWER_PASSWORD), startup_timeout=120)

        producer = Producer(Settings(redis_url=server.url))
        job_ids = [
            producer.enqueue_capture(storeId=STORE, shoppingTripId="t-ok", amount=USD),
            producer.enqueue_capture(storeId=STORE, shoppingTripId="t-retry", amount=USD),
            producer.enqueue_cancel(storeId=STORE, shoppingTripId="t-dead"),
        ]
        queued = redis_dump(rdb)  # the raw messages, before any worker takes them
        # task events are on only once Flower has turned them on: the jobs wait aside until then, untouched
        # (every list they wait in: the queues' own, the stores' lanes and their rings, tasks/store/lanes.py)
        aside = {key: f"{key}:aside" for key in lanes.every_key(rdb, QUEUES) if rdb.exists(key)}
        for key, parked in aside.items():
            rdb.rename(key, parked)
        worker = make_worker(server.url, api.url, env={**isolated_aws, **notify_env, **otel_env(otlp)}, concurrency=4)
        wait_until_watched(flower, worker)
        for key, parked in aside.items():
            rdb.rename(parked, key)

        def settled() -> bool:
            final = [r["state"] for r in records(rdb, job_ids, "state")]
            return final == ["succeeded", "succeeded", "dead"]

        wait_for(settled, timeout=60, what="the captures to succeed and the cancel to be dead-lettered")
        job_ids.append(producer.enqueue_refund(storeId=STORE, shoppingTripId="t-ok", amount={"amount": "2.00", "code": "USD"},
                                               refundReasonCode="DAMAGED_ITEM"))
        wait_for(lambda: rdb.zscore(keys.DEFERRED, job_ids[-1]), what="the refund to wait in the deferred set")
        reports = [json.loads(r["result"])["reportJobId"] for r in records(rdb, job_ids[:2], "result")]
        wait_for(lambda: all(r["state"] == "succeeded" for r in records(rdb, reports, "state")), what="the reports")
        wait_for(lambda: all(flower.get(f"/api/task/info/{j}").ok for j in job_ids), what="Flower to know every job")

        dead = job_ids[2]
        wait_for(lambda: len(api.notifications()) >= 5, what="the notifications of the 4 successes and the dead letter")
        bearer = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
        console = (CONSOLE_USER, CONSOLE_PASSWORD)
        served = {
            "intake GET job": serve.request("GET", f"/v1/jobs/{dead}", headers=bearer),
            "intake GET trip": serve.request("GET", f"/v1/trips/{STORE}/t-ok", headers=bearer),
            "intake POST job": serve.request("POST", "/v1/jobs", headers=bearer, json={
                "operation": "cancel", "storeId": STORE, "shoppingTripId": "t-http"}),
            "intake refusal (a wrong token)": serve.request("GET", f"/v1/jobs/{dead}", headers={"Authorization": "Bearer nope"}),
            "console overview": serve.request("GET", "/console/", auth=console),
            "console dead letters": serve.request("GET", "/console/dead-letters", auth=console),
            "console dead letter": serve.request("GET", f"/console/dead-letters/{dead}", auth=console),
            "console trip": serve.request("GET", "/console/trips", params={"store": STORE, "trip": "t-ok"}, auth=console),
            "console refusal (a wrong password)": serve.request("GET", "/console/", auth=(CONSOLE_USER, "wrong")),
        }
        unreachable = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"
        operator = {
            f"payq {' '.join(args)}": payq(server.url, tmp_path, *args)
            for args in [("job", job_ids[0]), ("job", dead, "--json"), ("dlq", "list"), ("dlq", "list", "--json"),
                         ("dlq", "show", dead), ("stats",)]
        }
        # Redis unreachable: the error names the URL, password masked
        refused = {f"payq {' '.join(args)} (Redis down)": payq(unreachable, tmp_path, *args)
                   for args in [("dlq", "list"), ("enqueue", "cancel", "--store-id", "s", "--trip-id", "t")]}
        places = {
            "worker log": worker.log(),
            "queued messages": decoded(queued),
            "Redis after the run": decoded(redis_dump(rdb)),
            "events on Redis (what Flower receives)": decoded("\n".join(list(tap.messages))),
            "Flower /api/tasks": flower.get("/api/tasks").text,
            "Flower /api/workers": flower.get("/api/workers", refresh="1").text,
            "Flower task pages": "".join(flower.get(f"/api/task/info/{j}").text for j in job_ids),
            "Flower /metrics": flower.get("/metrics", login=False).text,
            "Flower output": flower.output(),
            "sandbox request log": json.dumps(api.requests()),
            "notifications received (bodies and headers)": json.dumps(api.notifications()),
            **{f"{name} ({response.status_code})": f"{response.headers}\n{response.text}" for name, response in served.items()},
            **{f"{name} (stdout+stderr)": ran.stdout + ran.stderr for name, ran in {**operator, **refused}.items()},
        }
        places["payq serve output"] = serve.output()
        wait_for(lambda: {"POST /v1/jobs", "payq.api capture", "payq.notify"} <= {s.name for s in otlp.received()},
                 what="the intake's, the API calls' and the notifications' spans")
        places["exported spans (names, attributes, resources)"] = json.dumps(
            [[span.name, span.attributes, span.resource] for span in otlp.received()])
    finally:
        otlp.close()
        if tap is not None:
            tap.stop()
        if flower is not None:
            flower.stop()
        if serve is not None:
            serve.stop()
        server.close()

    found = leaks(places)
    fault_report.add(Figures(
        scenario=8, title="secrets", jobs=len(job_ids) + len(reports),
        jobs_detail="2 captures (1 after a reset and a 500) + reports, 1 cancel dead-lettered, 1 refund deferred",
        faults=f"{len(SECRETS)} secrets configured (Redis password in PAYQ_REDIS_URL, AWS secret key for SigV4, Flower password, "
               "notification signing secret, a store's intake token, the console password); "
               f"searched whole and by 12-character ends in {len(places)} places",
        lost=0, duplicates=0, notes=f"{len(found)} leaks", seconds=time.monotonic() - started,
    ))

    # the places hold what they should, so finding nothing means something
    assert "'shoppingTripId': 't-ok'" in places["queued messages"] or '"shoppingTripId": "t-ok"' in places["queued messages"]
    assert '"type": "task-succeeded"' in places["events on Redis (what Flower receives)"]
    assert "t-dead" in places["Flower /api/tasks"] and "Connected to redis://:**@" in places["worker log"]
    assert '"payq.trip.id": "t-ok"' in places["exported spans (names, attributes, resources)"]
    assert leaks({"a planted secret": decoded(base64.b64encode(AWS_SECRET.encode()).decode())}) != []
    assert found == []
    assert {name: ran.returncode for name, ran in operator.items()} == dict.fromkeys(operator, 0)
    assert {name: ran.returncode for name, ran in refused.items()} == dict.fromkeys(refused, 1)
    assert all("cannot reach Redis at redis://:***@127.0.0.1:" in ran.stderr for ran in refused.values())
    assert dead in operator["payq dlq list"].stdout and "BadRequestException: refused" in operator[f"payq dlq show {dead}"].stdout
    assert all(e["status"] != 403 for e in api.requests()), "every call was signed with the right secret"
    assert {name: r.status_code for name, r in served.items()} == {
        "intake GET job": 200, "intake GET trip": 200, "intake POST job": 202, "intake refusal (a wrong token)": 401,
        "console overview": 200, "console dead letters": 200, "console dead letter": 200, "console trip": 200,
        "console refusal (a wrong password)": 401,
    }
    assert dead in places["console dead letters (200)"]
    assert all(n["signatureValid"] for n in api.notifications()), "the notifications were signed with the secret that never leaked"
