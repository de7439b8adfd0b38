"""``payq job`` for each state a job can be in, and ``payq stats --json``, with a real worker and the sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tasks.producer import Producer
from tests.support.payq_cli import Ran
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess

USD = {"amount": "12.34", "code": "USD"}


def epoch(iso: str) -> float:
    """Seconds since the epoch from ``payq job``'s UTC timestamps."""
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def test_job_shows_each_state_and_stats_counts_them(
    payq: Callable[..., Ran], producer: Producer, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    api.set_faults({"rules": [
        {"endpoint": "cancel", "shoppingTripId": "t-dead", "sequence": ["400"]},
        {"endpoint": "capture", "shoppingTripId": "t-hang", "sequence": ["hang 30"]},
        # the report chained after t-ok's capture meets a 429: deferred, and the feedback endpoint paused
        {"endpoint": "feedback", "sequence": ["429 Retry-After: 60"]},
    ]})
    ok = producer.enqueue_capture(storeId="s1", shoppingTripId="t-ok", amount=USD)
    dead = producer.enqueue_cancel(storeId="s1", shoppingTripId="t-dead")
    hang = producer.enqueue_capture(storeId="s1", shoppingTripId="t-hang", amount=USD)

    def job(job_id: str) -> dict[str, Any]:
        ran = payq("job", job_id, "--json")
        assert ran.code == 0, ran.stderr
        data: dict[str, Any] = ran.json()
        return data

    queued = job(ok)
    assert (queued["state"], queued["attempts"], queued["operation"]) == ("queued", 0, "capture")
    assert queued["request"] == {"storeId": "s1", "shoppingTripId": "t-ok", "amount": USD}
    before = payq("stats", "--json").json()
    assert before["queues"] == [{"queue": "payments.capture", "depth": 2}, {"queue": "payments.cancel", "depth": 1},
                              {"queue": "payments.refund", "depth": 0}, {"queue": "payments.feedback", "depth": 0}]

    # the read timeout outlasts the test, so the hanging capture stays "running" however slow the machine
    worker = start_worker(env={"PAYQ_HTTP_READ_TIMEOUT": "30"})

    running = wait_for(lambda: (j := job(hang))["state"] == "running" and j, what="the hanging capture to be running")
    assert running["attempts"] == 1 and running["worker"].startswith(worker.name)
    # its holder is the worker's process, whose heartbeat renews the lease
    assert running["holder"] is not None and epoch(running["leaseUntil"]) > time.time() - 1
    live = payq("stats", "--json").json()["liveWorkers"]
    assert [w["worker"] for w in live] == [running["holder"]] and live[0]["ageSeconds"] < 10
    shown = payq("job", hang).stdout.splitlines()
    assert f"{'holder:':<16} {running['holder']}" in shown
    assert any(line.startswith("leaseUntil:") for line in shown)

    succeeded = wait_for(lambda: (j := job(ok))["state"] == "succeeded" and j, what="the capture to succeed")
    report_id = succeeded["reportJobId"]
    assert report_id == succeeded["result"]["reportJobId"] and report_id.startswith("feedback:s1:t-ok:")
    assert succeeded["attempts"] == 1 and succeeded["lastOutcome"] == "HTTP 200"

    deferred = wait_for(lambda: (j := job(report_id))["state"] == "deferred" and j, what="the report to be deferred")
    assert "HTTP 429" in deferred["why"] and "retry after 60s" in deferred["why"]
    assert 59 <= epoch(deferred["deferredUntil"]) - epoch(deferred["updatedAt"]) <= 61

    dead_lettered = wait_for(lambda: (j := job(dead))["state"] == "dead-lettered" and j, what="the cancel to be dead-lettered")
    assert dead_lettered["why"] == "permanent"
    assert dead_lettered["deadLetter"] is True
    assert "BadRequestException" in dead_lettered["lastOutcome"]

    # Freeze the picture: a killed worker changes nothing more (its job stays delivered, unacknowledged).
    worker.kill()

    settled = payq("job", ok).stdout.splitlines()
    assert f"{'worker:':<16} not kept once settled (the workers' logs name it)" in settled, settled
    text = payq("job", report_id)
    assert text.stdout.splitlines()[0].startswith(f"state:           deferred until {deferred['deferredUntil']}: HTTP 429")
    assert payq("job", dead).stdout.splitlines()[0] == (
        f"state:           dead-lettered (permanent; see payq dlq show {dead})"
    )

    stats = payq("stats", "--json").json()
    assert stats["deferred"] == 1
    assert abs(epoch(stats["deferredNextDueAt"]) - epoch(deferred["deferredUntil"])) <= 1
    assert stats["deadLetters"] == [{"reason": "permanent", "count": 1}]
    assert [p["operation"] for p in stats["pauses"]] == ["feedback"], (stats, worker.log()[-3000:])
    paused_until = epoch(stats["pauses"][0]["until"])
    assert paused_until > time.time() - 1
    assert abs(paused_until - epoch(stats["deferredNextDueAt"])) <= 1, "the report waits for the pause to end"
    assert [q["depth"] for q in stats["queues"]] == [0, 0, 0, 0]
    assert stats["unacked"] == 1, "the hanging capture was delivered and never acknowledged"
    assert stats["recovered"] == 0, "no live worker was left to give the killed worker's job back"
    # per store: the jobs it enqueued that are still open (the hanging capture) and its calls of the last minute
    assert stats["stores"] == [{"storeId": "s1", "openJobs": 1, "callsLastMinute": [
        {"operation": "cancel", "count": 1, "share": 1.0}, {"operation": "capture", "count": 2, "share": 1.0},
        {"operation": "feedback", "count": 1, "share": 1.0}]}]
    text_stats = payq("stats").stdout
    assert "dead letters: permanent 1" in text_stats
    assert "jobs given back from workers whose lease lapsed: 0" in text_stats
    assert f"  {'s1':<20} open {1:<7} cancel 1 (100%), capture 2 (100%), feedback 1 (100%)" in text_stats.splitlines()
    assert "endpoint pauses: feedback until " in text_stats


def test_job_of_an_unknown_id_is_invalid_input(payq: Callable[..., Ran]) -> None:
    ran = payq("job", "capture:s1:never")

    assert ran.code == 2
    assert "no job 'capture:s1:never'" in ran.stderr
