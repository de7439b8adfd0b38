"""``payq dlq list`` and ``payq dlq show`` against a private Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from config.settings import Settings
from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind
from payq.views import dead_letter_view
from tasks.redis import keys
from tasks.redis.keys import DEAD_LETTER_REASONS
from tasks.states import DeadLetterReason
from tasks.store.deadletters import DeadLetter, Replayed
from tests.support.deadletters import Spec, seed
from tests.support.payq_cli import Ran
from workers.runtime import Runtime

HOUR = 3600.0


@pytest.fixture
def entries(op_settings: Settings) -> list[DeadLetter]:
    """Five entries of different operations, stores, reasons and ages (newest first)."""
    return seed(op_settings, [
        Spec(trip="trip-a", operation="cancel", store="s1", reason="permanent", age=5 * 60),
        Spec(trip="trip-b", operation="refund", store="s1", reason="retries-exhausted", age=2 * HOUR, status=500, attempts=8),
        Spec(trip="trip-c", operation="capture", store="s2", reason="permanent", age=5 * HOUR),
        Spec(trip="trip-d", operation="feedback", store="s2", reason="feedback-rejected", age=30 * HOUR, status=200),
        Spec(trip="trip-e", operation="cancel", store="s3", reason="internal-error", age=8 * 24 * HOUR, status=None),
    ])


def test_list_prints_one_line_per_entry_newest_first(payq: Callable[..., Ran], entries: list[DeadLetter]) -> None:
    ran = payq("dlq", "list")

    assert ran.code == 0, ran.stderr
    header, *rows = ran.stdout.splitlines()
    assert header.split() == ["ID", "OPERATION", "STORE", "TRIP", "REASON", "STATUS", "ATT", "AGE"]
    assert [row.split()[0] for row in rows] == [e.id for e in entries]
    assert rows[0].split()[1:] == ["cancel", "s1", "trip-a", "permanent", "400", "1", "5m"]
    assert rows[1].split()[1:] == ["refund", "s1", "trip-b", "retries-exhausted", "500", "8", "2h"]
    assert rows[4].split()[1:] == ["cancel", "s3", "trip-e", "internal-error", "-", "1", "8d"]
    assert "5 dead letter(s)" in ran.stderr


@pytest.mark.parametrize(("options", "trips"), [
    ((), ["trip-a", "trip-b", "trip-c", "trip-d", "trip-e"]),
    (("--operation", "cancel"), ["trip-a", "trip-e"]),
    (("--store-id", "s2"), ["trip-c", "trip-d"]),
    (("--reason", "permanent"), ["trip-a", "trip-c"]),
    (("--since", "6h"), ["trip-a", "trip-b", "trip-c"]),
    (("--since", "2d", "--store-id", "s2", "--reason", "feedback-rejected"), ["trip-d"]),
    (("--operation", "refund", "--store-id", "s2"), []),
])
def test_list_json_filters(payq: Callable[..., Ran], entries: list[DeadLetter], options: tuple[str, ...], trips: list[str]) -> None:
    ran = payq("dlq", "list", "--json", *options)

    assert ran.code == 0, ran.stderr
    listed = ran.json()
    by_id = {e.id: e for e in entries}
    assert [by_id[item["jobId"]].trip_id for item in listed] == trips
    assert all(item == dead_letter_view(by_id[item["jobId"]]) for item in listed), "everything stored, in the public shape"


def test_show_json_has_everything_stored_including_replay_history(
    payq: Callable[..., Ran], op_settings: Settings, entries: list[DeadLetter],
) -> None:
    rt = Runtime.build(op_settings)
    refund = entries[1]
    assert rt.dead_letters.replay(refund.id, by="alice") is Replayed.REPLAYED
    # the replayed job fails again: the worker dead-letters it a second time
    failed_again = Failure(FailureKind.UNAVAILABLE, 503, error_msg="ServiceUnavailableException")
    rt.dead_letters.add(DeadLetter.of(failed_again, **refund.model_dump(exclude={"kind", "status", "error_type", "error_msg", "detail", "error",
                                                                                    "dead_at"}), dead_at=time.time()))

    shown = payq("dlq", "show", refund.id, "--json")

    assert shown.code == 0, shown.stderr
    data = shown.json()
    assert set(data) >= {"jobId", "operation", "task", "request", "reason", "status", "error", "attempts", "firstAttemptAt",
                         "lastAttemptAt", "deadAt", "worker", "replays", "history"}
    assert data["request"] == refund.kwargs and data["request"]["refundRequestId"]
    assert data["task"] == "payments.refund"
    assert data["error"] == "HTTP 503 Service Unavailable: ServiceUnavailableException"
    assert (data["status"], data["errorMsg"]) == (503, "ServiceUnavailableException")
    assert data["replays"] == 1
    [earlier] = data["history"]
    assert earlier["by"] == "alice"
    assert earlier["reason"] == "retries-exhausted"
    assert earlier["attempts"] == 8

    text = payq("dlq", "show", refund.id)
    assert text.code == 0
    assert f"id:                {refund.id}" in text.stdout
    assert "1 earlier replay(s)" in text.stdout
    assert "by alice, after retries-exhausted (8 attempt(s)): HTTP 500 Internal Server Error" in text.stdout


def test_show_of_an_unknown_id_is_invalid_input(payq: Callable[..., Ran], entries: list[DeadLetter]) -> None:
    ran = payq("dlq", "show", "cancel:s9:nope")

    assert ran.code == 2
    assert "no dead letter 'cancel:s9:nope'" in ran.stderr
    assert ran.stdout == ""


def test_counts_by_reason_heal_after_entries_were_edited_by_hand(op_settings: Settings, entries: list[DeadLetter]) -> None:
    rt = Runtime.build(op_settings)
    expected = {"permanent": 2, "retries-exhausted": 1, "feedback-rejected": 1, "internal-error": 1}
    assert rt.dead_letters.count_by_reason() == expected

    rt.redis.delete(DEAD_LETTER_REASONS)  # as if written before the counts existed
    assert rt.dead_letters.count_by_reason() == expected
    rt.redis.hdel(keys.DEAD_LETTERS, entries[0].id)  # an operator's redis-cli HDEL
    assert rt.dead_letters.count_by_reason() == {**expected, "permanent": 1}


def test_an_outcome_notifications_entry_names_the_store_and_trip_it_tells_of() -> None:
    # it was shown as "store , trip ": a notification's storeId is in its data, not at its top level
    event = {"id": "capture:s1:t1:succeeded", "type": "job.succeeded", "timestamp": "2026-11-27T13:00:00Z",
             "data": {"jobId": "capture:s1:t1", "operation": "capture", "storeId": "s1", "shoppingTripId": "t1", "state": "succeeded"}}
    entry = DeadLetter(id="capture:s1:t1:succeeded", operation=Operation.NOTIFY, task="payments.notify", kwargs=event,
                       reason=DeadLetterReason.NOTIFY_FAILED, error="HTTP 500", attempts=20, dead_at=0.0)

    assert (entry.store_id, entry.trip_id) == ("s1", "t1")
