"""``payq dlq replay``: same job, published once, entry removed only with the publish."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable

import pytest
import redis

from config.settings import Settings
from tasks.redis import keys
from tasks.redis.keys import DEAD_LETTER_REASONS
from tasks.states import DeadLetterReason
from tasks.store import lanes
from tasks.store.deadletters import DeadLetter, Replayed
from tests.support.deadletters import Spec, seed
from tests.support.jobs import queued
from tests.support.payq_cli import REPO_ROOT, Ran, cli_env, invoke, payq_command
from tests.support.polling import wait_for
from tests.support.redis_server import RedisServer
from workers.runtime import Runtime


def everything(url: str) -> dict[bytes, bytes]:
    """Every key's serialized value: equal snapshots mean nothing was written."""
    raw = redis.Redis.from_url(url)
    try:
        return {key: raw.dump(key) for key in sorted(raw.keys("*"))}
    finally:
        raw.close()


def test_replay_by_id_republishes_the_same_job_with_attempts_reset(
    payq: Callable[..., Ran], op_settings: Settings, redis_server: RedisServer,
) -> None:
    refund, cancel = seed(op_settings, [
        Spec(trip="trip-1", operation="refund", reason="retries-exhausted", attempts=8),
        Spec(trip="trip-2", operation="cancel"),
    ])
    client = redis_server.client()

    ran = payq("dlq", "replay", refund.id)

    assert ran.code == 0, ran.stderr
    assert ran.stdout.splitlines() == [f"replayed {refund.id} (refund, retries-exhausted, store s1, trip trip-1)"]
    [message] = queued(client, "payments.refund")
    assert message == {"id": refund.id, "task": "payments.refund", "kwargs": refund.kwargs}
    assert message["kwargs"]["refundRequestId"] == refund.kwargs["refundRequestId"]  # the idempotency key travels
    record = client.hgetall(keys.job(refund.id))
    assert (record["state"], record["attempts"], record["replays"]) == ("queued", "0", "1")
    assert "first_attempt_at" not in record
    [history] = [json.loads(h) for h in client.lrange(keys.replays(refund.id), 0, -1)]
    assert (history["reason"], history["attempts"]) == ("retries-exhausted", 8)
    runtime = Runtime.build(op_settings)
    assert runtime.dead_letters.get(refund.id) is None
    assert runtime.dead_letters.get(cancel.id) is not None, "only the named entry"
    assert runtime.dead_letters.count_by_reason() == {"permanent": 1}


def test_replay_all_with_filters_replays_only_the_matching_entries(
    payq: Callable[..., Ran], op_settings: Settings, redis_server: RedisServer,
) -> None:
    entries = seed(op_settings, [
        Spec(trip="t1", store="s1"), Spec(trip="t2", store="s2"), Spec(trip="t3", store="s1", reason="internal-error", status=None),
        Spec(trip="t4", store="s1", operation="capture"),
    ])

    ran = payq("dlq", "replay", "--all", "--operation", "cancel", "--store-id", "s1")

    assert ran.code == 0, ran.stderr
    replayed = [line.split()[1] for line in ran.stdout.splitlines()]
    assert sorted(replayed) == sorted([entries[0].id, entries[2].id])
    assert sorted(m["id"] for m in queued(redis_server.client(), "payments.cancel")) == sorted(replayed)
    left = [e.id for e in Runtime.build(op_settings).dead_letters.list()]
    assert sorted(left) == sorted([entries[1].id, entries[3].id])
    assert "replayed 2 of 2" in ran.stderr


def test_dry_run_prints_what_would_be_replayed_and_changes_nothing(
    payq: Callable[..., Ran], op_settings: Settings, redis_url: str,
) -> None:
    entries = seed(op_settings, [Spec(trip="t1"), Spec(trip="t2", reason="internal-error", status=None), Spec(trip="t3")])
    before = everything(redis_url)

    by_filter = payq("dlq", "replay", "--all", "--reason", "permanent", "--dry-run")
    by_id = payq("dlq", "replay", entries[1].id, "--dry-run")

    assert by_filter.code == by_id.code == 0
    assert sorted(by_filter.stdout.splitlines()) == sorted(
        f"would replay {e.id} (cancel, permanent, store s1, trip {e.trip_id})" for e in (entries[0], entries[2])
    )
    assert by_id.stdout.splitlines() == [f"would replay {entries[1].id} (cancel, internal-error, store s1, trip t2)"]
    assert "nothing changed" in by_filter.stderr
    assert everything(redis_url) == before


@pytest.mark.parametrize("args", [
    ("dlq", "replay"),
    ("dlq", "replay", "cancel:s1:t1", "--all"),
    ("dlq", "replay", "cancel:s1:t1", "--reason", "permanent"),
    ("dlq", "replay", "--all", "--since", "yesterday"),
    ("dlq", "replay", "--all", "--operation", "charge"),
])
def test_contradictory_or_malformed_replays_are_invalid_input(payq: Callable[..., Ran], op_settings: Settings, redis_url: str,
                                                              args: tuple[str, ...]) -> None:
    seed(op_settings, [Spec(trip="t1")])
    before = everything(redis_url)

    ran = payq(*args)

    assert ran.code == 2
    assert ran.stdout == ""
    assert everything(redis_url) == before


def test_replay_naming_an_unknown_id_replays_nothing(payq: Callable[..., Ran], op_settings: Settings, redis_url: str) -> None:
    [entry] = seed(op_settings, [Spec(trip="t1")])
    before = everything(redis_url)

    ran = payq("dlq", "replay", entry.id, "cancel:s1:typo")

    assert ran.code == 2
    assert "no dead letter 'cancel:s1:typo'" in ran.stderr
    assert everything(redis_url) == before


def test_two_concurrent_replay_all_runs_replay_each_entry_once(op_settings: Settings, redis_url: str, redis_server: RedisServer) -> None:
    entries = seed(op_settings, [Spec(trip=f"trip-{i:05d}") for i in range(1500)])
    client = redis_server.client()
    env = {**os.environ, **cli_env(redis_url)}
    command = [*payq_command(), "dlq", "replay", "--all"]

    with tempfile.TemporaryFile() as first_err:
        # Nobody reads the first run's stdout until the second has finished, so the first
        # stops part-way, blocked on a full pipe, holding a list of entries the second
        # then replays under it: the overlap is certain, not left to timing.
        first = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=first_err, text=True)
        try:
            wait_for(lambda: lanes.depths(client, ["payments.cancel"])["payments.cancel"] > 0, what="the first run to start publishing")
            second = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
            first_out, _ = first.communicate(timeout=120)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        first_err.seek(0)
        first_summary = first_err.read().decode()

    assert first.returncode == second.returncode == 0, (first_summary, second.stderr)
    first_ids = [line.split()[1] for line in first_out.splitlines()]
    second_ids = [line.split()[1] for line in second.stdout.splitlines()]
    assert first_ids and second_ids, "both runs replayed some entries"
    assert "already replayed or purged by someone else" in first_summary, "the runs overlapped"
    assert sorted(first_ids + second_ids) == sorted(e.id for e in entries), "every entry replayed by exactly one run"
    published = [m["id"] for m in queued(client, "payments.cancel")]
    assert len(published) == len(set(published)) == len(entries)
    pipe = client.pipeline(transaction=False)
    for entry in entries:
        pipe.hget(keys.job(entry.id), "replays")
    assert set(pipe.execute()) == {"1"}
    assert client.hlen(keys.DEAD_LETTERS) == 0
    assert client.hgetall(DEAD_LETTER_REASONS) == {}


def test_replay_while_redis_is_down_exits_1_and_keeps_the_entry() -> None:
    # A server of its own with an append-only file: the entry must be checked after a restart.
    server = RedisServer(appendonly=True)
    try:
        settings = Settings(redis_url=server.url, redis_retry_seconds=0.3)
        [entry] = seed(settings, [Spec(trip="t-down")])
        server.stop()

        down = invoke(server.url, "dlq", "replay", entry.id)

        server.start()
        assert down.code == 1
        [line] = down.stderr.strip().splitlines()
        assert line.startswith(f"error: cannot reach Redis at {server.url}")
        assert down.stdout == ""
        store = Runtime.build(settings).dead_letters
        assert store.get(entry.id) == entry
        assert lanes.depths(server.client(), ["payments.cancel"]) == {"payments.cancel": 0}
        assert server.client().hget(keys.job(entry.id), "state") == "dead"

        up = invoke(server.url, "dlq", "replay", entry.id)
        assert up.code == 0, up.stderr
        assert store.get(entry.id) is None
        assert lanes.depths(server.client(), ["payments.cancel"]) == {"payments.cancel": 1}
    finally:
        server.close()


def test_replay_of_an_entry_rewritten_since_it_was_read_records_the_latest_failure(op_settings: Settings) -> None:
    [entry] = seed(op_settings, [Spec(trip="t1", attempts=1)])
    store = Runtime.build(op_settings).dead_letters
    newer = entry.model_copy(update={"attempts": 8, "reason": DeadLetterReason.RETRIES_EXHAUSTED, "dead_at": entry.dead_at + 1})
    store.add(newer)

    assert store.replay_entries([entry], by="bob") == [Replayed.REPLAYED]

    store.add(newer)  # and it fails once more
    again = store.get(entry.id)
    assert isinstance(again, DeadLetter)
    assert [(h["reason"], h["attempts"]) for h in again.history] == [("retries-exhausted", 8)]
    assert store.count_by_reason() == {"retries-exhausted": 1}


def test_an_entry_written_by_an_older_payq_can_still_be_replayed(payq: Callable[..., Ran], redis_server: RedisServer) -> None:
    client = redis_server.client()
    # no status, worker, replays or history: fields this version fills with defaults when it reads the entry
    client.hset(keys.DEAD_LETTERS, "cancel:s1:old", json.dumps({
        "id": "cancel:s1:old", "operation": "cancel", "task": "payments.cancel", "kwargs": {"storeId": "s1", "shoppingTripId": "old"},
        "reason": "permanent", "error": "BadRequestException", "attempts": 1, "dead_at": 1700000000.25, "legacy": True,
    }))
    client.zadd(keys.DEAD_LETTER_INDEX, {"cancel:s1:old": 1700000000.25})

    ran = payq("dlq", "replay", "cancel:s1:old")

    assert ran.code == 0, ran.stderr
    assert [m["id"] for m in queued(client, "payments.cancel")] == ["cancel:s1:old"]
    assert client.hlen(keys.DEAD_LETTERS) == 0
