"""One trace per payment: a store backend's capture, from its POST to its notifications, is one OpenTelemetry trace.

Everything is real: ``payq serve``, two worker processes, the sandbox (scripted
to answer the capture 503 once, so the job waits in the deferred set and runs
again), a webhook receiver, and an OTLP/HTTP receiver (tests/support/otlp.py)
that decodes what the processes export with the protocol's own classes. The
processes are configured only through the standard ``OTEL_*`` variables.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis

from payapi.operations import Operation
from payq.serve.access import digest
from tasks import tracing
from tasks.producer import Producer
from tasks.redis import keys
from tasks.store import lanes
from tasks.tracing import carried
from tests.jobs.test_notifications import notify_env
from tests.support.jobs import calls, record, wait_for_state
from tests.support.names import queue_of
from tests.support.otlp import ReceivedSpan, otel_env, otlp_receiving
from tests.support.payq_cli import PayqRunner
from tests.support.polling import wait_for
from tests.support.receiver import receiving
from tests.support.sandbox import SandboxProcess
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess

TOKEN = "payq-trace-token-Hk2Wd8Zr5Tq1Nm7P"
STORE = "s-trace"
AMOUNT = {"amount": "73.19", "code": "USD"}
# the store backend's own trace: its POST's traceparent
STORE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
STORE_SPAN = "00f067aa0ba902b7"
STORE_TRACEPARENT = f"00-{STORE_TRACE}-{STORE_SPAN}-01"


def only(spans: list[ReceivedSpan], name: str, **attributes: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())]


@pytest.mark.timeout(240)
def test_one_capture_is_one_trace_from_the_store_post_through_a_deferral_and_two_workers_to_its_notifications(
    redis_url: str, api: SandboxProcess, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    trip = "t-traced"
    api.set_faults({"rules": [{"endpoint": "capture", "shoppingTripId": trip, "sequence": ["503"]}]})  # once, then the ledger's answer
    with otlp_receiving() as otlp, receiving() as webhook:
        # the captures on one worker process, the reports on another: the trace crosses both
        capturer = start_worker(env={**notify_env(webhook.url), **otel_env(otlp, OTEL_RESOURCE_ATTRIBUTES="service.instance.id=capturer")},
                                options=("-Q", queue_of("capture")))
        reporter = start_worker(env={**notify_env(webhook.url), **otel_env(otlp, OTEL_RESOURCE_ATTRIBUTES="service.instance.id=reporter")},
                                options=("-Q", queue_of("feedback")))
        with ServeProcess(redis_url, env={"PAYQ_INTAKE_TOKENS": json.dumps({digest(TOKEN): [STORE]}), **otel_env(otlp)}) as serve:
            answer = serve.request("POST", "/v1/jobs", json={"operation": "capture", "storeId": STORE, "shoppingTripId": trip,
                                                             "amount": AMOUNT},
                                   headers={"Authorization": f"Bearer {TOKEN}", "traceparent": STORE_TRACEPARENT})
            assert answer.status_code == 202, answer.text
            capture = answer.json()["jobId"]
            wait_for_state(rdb, capture, "succeeded", timeout=60)
            report = json.loads(record(rdb, capture)["result"])["reportJobId"]
            wait_for_state(rdb, report, "succeeded", timeout=60)
            wait_for(lambda: len(webhook.delivered()) == 2, timeout=30, what="the capture's and the report's notifications")
            expected = {"POST /v1/jobs", "payq.enqueue", "payq.task capture", "payq.api capture", "payq.defer", "payq.task feedback",
                        "payq.api feedback", "payq.notify"}
            wait_for(lambda: expected <= {s.name for s in otlp.received()} and len(only(otlp.received(), "payq.notify")) == 2
                     and len(only(otlp.received(), "payq.task capture")) == 2, timeout=30, what=f"the spans {sorted(expected)}")
        spans = otlp.received()

    assert {s.trace_id for s in spans} == {STORE_TRACE}, "every span of the capture is in the store backend's trace"
    # the intake's span is FastAPI's own, for /v1 only (no span per health check)
    [intake] = [s for s in spans if s.kind == "SPAN_KIND_SERVER"]
    assert intake.name == "POST /v1/jobs" and intake.parent_id == STORE_SPAN and intake.attributes[tracing.HTTP_STATUS] == 202
    [enqueue] = only(spans, "payq.enqueue")
    assert enqueue.parent_id == intake.span_id and enqueue.service == "payq-serve"
    assert enqueue.attributes[tracing.JOB_ID] == capture
    # the capture: delivered twice (503, deferred; then succeeded), each delivery a child of the enqueue, on the capturer
    first, second = only(spans, "payq.task capture")
    assert [first.attributes[tracing.ENDING], second.attributes[tracing.ENDING]] == ["deferred", "succeeded"]
    assert {first.parent_id, second.parent_id} == {enqueue.span_id}
    assert {first.resource["service.instance.id"], second.resource["service.instance.id"]} == {"capturer"}
    assert first.service == "payq-worker"
    for task in (first, second):
        assert task.attributes[tracing.JOB_ID] == capture and task.attributes[tracing.OPERATION] == "capture"
        assert task.attributes[tracing.STORE_ID] == STORE and task.attributes[tracing.TRIP_ID] == trip
    api_calls = only(spans, "payq.api capture")
    assert [(c.parent_id, c.attributes[tracing.HTTP_STATUS], c.attributes[tracing.OUTCOME], c.status) for c in api_calls] == [
        (first.span_id, 503, "Transient", "STATUS_CODE_ERROR"), (second.span_id, 200, "Success", "STATUS_CODE_UNSET")]
    [defer] = only(spans, "payq.defer")
    assert defer.parent_id == first.span_id and defer.attributes[tracing.DEFER_CAUSE] == "backoff"
    # the chained report: a child of the capture's successful delivery, run by the other worker process
    [report_task] = only(spans, "payq.task feedback")
    assert report_task.parent_id == second.span_id and report_task.attributes[tracing.JOB_ID] == report
    assert report_task.resource["service.instance.id"] == "reporter"
    [report_call] = only(spans, "payq.api feedback")
    assert report_call.parent_id == report_task.span_id
    # the notifications: each delivery a span in its job's trace
    assert sorted(s.attributes[tracing.JOB_ID] for s in only(spans, "payq.notify")) == sorted([capture, report])

    # the payment API and the webhook receiver were sent the trace: each API call's traceparent names its span
    sent = [(entry["headers"].get("Traceparent") or entry["headers"].get("traceparent")) for entry in
            calls(api, Operation.CAPTURE) + calls(api, Operation.FEEDBACK)]
    assert sent == [f"00-{STORE_TRACE}-{c.span_id}-01" for c in [*api_calls, report_call]]
    notified = {d.json()["data"]["jobId"]: d.headers.get("traceparent", "") for d in webhook.delivered()}
    notify_spans = {s.attributes[tracing.JOB_ID]: s.span_id for s in only(spans, "payq.notify")}
    assert notified == {job: f"00-{STORE_TRACE}-{span}-01" for job, span in notify_spans.items()}
    # the trace is kept on the records, so every later message of the job (a deferral's, a replay's) carries it
    assert record(rdb, capture)["traceparent"] == f"00-{STORE_TRACE}-{enqueue.span_id}-01"
    assert record(rdb, report)["traceparent"] == f"00-{STORE_TRACE}-{second.span_id}-01"
    # what an operator asked "where is this trip's capture?" searches the tracing backend for
    assert json.loads(payq("job", capture, "--json").stdout)["traceId"] == STORE_TRACE

    # no amount, token or secret in any span or resource
    told = json.dumps([[s.name, s.attributes, s.resource] for s in spans])
    for secret in (TOKEN, AMOUNT["amount"], "7319", notify_env("")["PAYQ_NOTIFY_SECRET"]):
        assert secret not in told
    assert capturer.process is not None and reporter.process is not None


def test_off_by_default_the_store_backends_traceparent_is_still_kept_and_nothing_is_sent(
    redis_url: str, api: SandboxProcess, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()  # no OTEL_* variables: what an operator gets
    with ServeProcess(redis_url, env={"PAYQ_INTAKE_TOKENS": json.dumps({digest(TOKEN): [STORE]})}) as serve:
        answer = serve.request("POST", "/v1/jobs", json={"operation": "cancel", "storeId": STORE, "shoppingTripId": "t-off"},
                               headers={"Authorization": f"Bearer {TOKEN}", "traceparent": STORE_TRACEPARENT})
        bad = serve.request("POST", "/v1/jobs", json={"operation": "cancel", "storeId": STORE, "shoppingTripId": "t-bad"},
                            headers={"Authorization": f"Bearer {TOKEN}", "traceparent": "00-not-a-trace-id-01"})
    assert answer.status_code == 202 and bad.status_code == 202, "a traceparent that is not one is ignored, as W3C asks"
    cancel, other = answer.json()["jobId"], bad.json()["jobId"]
    wait_for_state(rdb, cancel, "succeeded")
    wait_for_state(rdb, other, "succeeded")
    assert record(rdb, cancel)["traceparent"] == STORE_TRACEPARENT, "the job keeps the store backend's trace, for a worker that traces"
    assert "traceparent" not in record(rdb, other)
    assert all("traceparent" not in {h.lower() for h in entry["headers"]} for entry in calls(api, Operation.CANCEL)), \
        "a worker that does not trace sends no trace context"


def test_the_python_producer_keeps_its_callers_current_trace(producer: Producer, rdb: redis.Redis) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    # the store backend's own tracing, not payq's: a provider of its own, never installed globally
    tracer = TracerProvider().get_tracer("store-backend")
    with tracer.start_as_current_span("checkout") as span:
        job_id = producer.enqueue_cancel(storeId=STORE, shoppingTripId="t-python")
        context = span.get_span_context()
    assert record(rdb, job_id)["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    [message] = lanes.messages(rdb, queue_of("cancel"))
    assert json.loads(message)["headers"]["traceparent"] == record(rdb, job_id)["traceparent"]
    assert trace.get_current_span() is trace.INVALID_SPAN
    untraced = producer.enqueue_cancel(storeId=STORE, shoppingTripId="t-python-2")
    assert "traceparent" not in record(rdb, untraced) and rdb.exists(keys.job(untraced))


def test_a_replayed_dead_letter_runs_in_its_jobs_trace(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess], payq: PayqRunner,
) -> None:
    api.set_faults({"rules": [{"endpoint": "cancel", "fault": {"status": 400, "body": {"errorMsg": "BadRequestException: no"}}}]})
    with otlp_receiving() as otlp:
        start_worker(env=otel_env(otlp))
        with carried(STORE_TRACEPARENT):  # the store backend's trace, as the intake carries it
            cancel = producer.enqueue_cancel(storeId=STORE, shoppingTripId="t-replayed")
        wait_for_state(rdb, cancel, "dead")
        api.set_faults({"rules": []})
        assert payq("dlq", "replay", cancel).returncode == 0
        wait_for_state(rdb, cancel, "succeeded")
        wait_for(lambda: len(only(otlp.received(), "payq.task cancel")) == 2, what="both deliveries' spans")
        first, replayed = only(otlp.received(), "payq.task cancel")
    assert [first.attributes[tracing.ENDING], replayed.attributes[tracing.ENDING]] == ["dead", "succeeded"]
    assert first.trace_id == replayed.trace_id == STORE_TRACE and first.parent_id == replayed.parent_id == STORE_SPAN


def test_a_prefork_workers_children_export_their_spans(
    producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    with otlp_receiving() as otlp:
        # tracing is set up before the fork (the start-up check builds the runtime); each child exports on a thread of its own
        start_worker(env=otel_env(otlp), pool="prefork", concurrency=2)
        with carried(STORE_TRACEPARENT):
            cancel = producer.enqueue_cancel(storeId=STORE, shoppingTripId="t-prefork")
        wait_for_state(rdb, cancel, "succeeded")
        wait_for(lambda: {"payq.task cancel", "payq.api cancel"} <= {s.name for s in otlp.received()}, what="the child's spans")
        spans = [s for s in otlp.received() if s.name in ("payq.task cancel", "payq.api cancel")]
    assert {s.trace_id for s in spans} == {STORE_TRACE}
