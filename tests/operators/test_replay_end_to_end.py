"""A replayed job runs again on a real worker: same idempotency key, and back in the store with its count if it fails again."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tasks.producer import Producer
from tests.support.payq_cli import Ran
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess

REFUND_PATH = "/v1/refund"
USD = {"amount": "12.34", "code": "USD"}


def test_replayed_refund_that_fails_again_returns_with_its_replay_count_then_succeeds(
    payq: Callable[..., Ran], producer: Producer, api: SandboxProcess, start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker()
    capture = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD)
    wait_for(lambda: payq("job", capture, "--json").json()["state"] == "succeeded", what="the capture")
    api.set_faults({"rules": [{"endpoint": "refund", "sequence": ["400", "400"]}]})
    refund = producer.enqueue_refund(storeId="s1", shoppingTripId="t1", amount={"amount": "2.00", "code": "USD"},
                                     refundReasonCode="DAMAGED_ITEM")

    def entry(replays: int) -> dict[str, Any] | None:
        shown = payq("dlq", "show", refund, "--json")
        data: dict[str, Any] | None = shown.json() if shown.code == 0 else None
        return data if data is not None and data["replays"] == replays else None

    first = wait_for(lambda: entry(0), what="the refund to be dead-lettered")
    assert (first["reason"], first["status"], first["attempts"]) == ("permanent", 400, 1)

    replayed = payq("dlq", "replay", refund)
    assert replayed.code == 0, replayed.stderr
    assert replayed.stdout.startswith(f"replayed {refund} (refund, permanent, store s1, trip t1)")

    again = wait_for(lambda: entry(1), what="the replayed refund to fail again and come back")
    assert again["attempts"] == 1, "attempts were reset by the replay"
    [history] = again["history"]
    assert (history["reason"], history["status"], history["attempts"]) == ("permanent", 400, 1)
    assert "payq dlq replay" in history["by"]
    listed = payq("dlq", "list", "--json").json()
    assert [(e["jobId"], e["replays"]) for e in listed] == [(refund, 1)]

    assert payq("dlq", "replay", "--all", "--operation", "refund").code == 0
    done = wait_for(lambda: (j := payq("job", refund, "--json").json())["state"] == "succeeded" and j, what="the refund to succeed")
    assert done["result"]["reconciliationId"]
    assert (done["attempts"], done["replays"]) == (1, 2)
    assert payq("dlq", "list", "--json").json() == []

    keys = [json.loads(r["body"])["refundRequestId"] for r in api.requests(REFUND_PATH)]
    assert len(keys) == 3
    assert set(keys) == {first["request"]["refundRequestId"]}, "every attempt, first and replayed, used the same idempotency key"
