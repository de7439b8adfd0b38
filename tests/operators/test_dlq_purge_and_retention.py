"""``payq dlq purge`` and the retention trim: entries leave only when told, or when past the retention."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from config.settings import Settings
from tests.support.deadletters import Spec, seed
from tests.support.payq_cli import Ran
from tests.support.polling import wait_for
from tests.support.worker import WorkerProcess
from workers.runtime import Runtime

DAY = 86400.0


def left(settings: Settings) -> list[str]:
    """Trips still in the dead-letter store, newest first."""
    return [e.trip_id for e in Runtime.build(settings).dead_letters.list()]


def test_purge_by_ids_deletes_those_and_says_how_many(payq: Callable[..., Ran], op_settings: Settings) -> None:
    a, b, _c = seed(op_settings, [Spec(trip="a"), Spec(trip="b", reason="internal-error", status=None), Spec(trip="c")])

    ran = payq("dlq", "purge", a.id, b.id, "--yes")

    assert ran.code == 0, ran.stderr
    assert ran.stdout.strip() == "purged 2 dead letter(s)"
    assert left(op_settings) == ["c"]
    assert Runtime.build(op_settings).dead_letters.count_by_reason() == {"permanent": 1}


def test_purge_all_older_than_keeps_newer_entries(payq: Callable[..., Ran], op_settings: Settings) -> None:
    seed(op_settings, [Spec(trip="new", age=60), Spec(trip="week", age=7 * DAY), Spec(trip="month", age=31 * DAY)])

    ran = payq("dlq", "purge", "--all", "--older-than", "2d", "--yes")

    assert ran.code == 0, ran.stderr
    assert ran.stdout.strip() == "purged 2 dead letter(s)"
    assert left(op_settings) == ["new"]
    assert payq("dlq", "purge", "--all", "--yes").stdout.strip() == "purged 1 dead letter(s)"
    assert left(op_settings) == []


@pytest.mark.parametrize(("args", "says"), [
    (("dlq", "purge", "--all"), "--yes: is required"),
    (("dlq", "purge", "--yes"), "give one or more IDs, or --all"),
    (("dlq", "purge", "cancel:s1:a", "--all", "--yes"), "not both"),
    (("dlq", "purge", "cancel:s1:a", "--older-than", "1d", "--yes"), "not both"),
    (("dlq", "purge", "--all", "--older-than", "a while", "--yes"), "--older-than: must be a duration"),
    (("dlq", "purge", "cancel:s1:a", "cancel:s1:typo", "--yes"), "no dead letter 'cancel:s1:typo'"),
])
def test_purge_refuses_without_yes_or_with_bad_selection_and_deletes_nothing(
    payq: Callable[..., Ran], op_settings: Settings, args: tuple[str, ...], says: str,
) -> None:
    seed(op_settings, [Spec(trip="a"), Spec(trip="b")])

    ran = payq(*args)

    assert ran.code == 2
    assert says in ran.stderr
    assert left(op_settings) == ["a", "b"] or left(op_settings) == ["b", "a"]


def test_purge_older_than_spares_an_entry_dead_lettered_again_meanwhile(op_settings: Settings) -> None:
    [old] = seed(op_settings, [Spec(trip="old", age=10 * DAY)])
    store = Runtime.build(op_settings).dead_letters
    cutoff = time.time() - DAY
    # the operator listed it as old; before the purge ran, it was replayed and failed again
    store.replay(old.id)
    store.add(old.model_copy(update={"dead_at": time.time()}))

    assert store.purge([old.id], dead_before=cutoff) == 0
    assert store.get(old.id) is not None


def test_trim_deletes_entries_past_the_retention_and_never_before(op_settings: Settings) -> None:
    seed(op_settings, [Spec(trip="fresh"), Spec(trip="29d", age=29 * DAY), Spec(trip="31d", age=31 * DAY),
                       Spec(trip="90d", age=90 * DAY, reason="internal-error", status=None)])
    store = Runtime.build(op_settings).dead_letters  # default retention: 30 days

    assert store.trim(time.time()) == 2
    assert left(op_settings) == ["fresh", "29d"]
    assert store.count_by_reason() == {"permanent": 2}
    assert store.trim(time.time()) == 0


def test_worker_housekeeping_trims_dead_letters_past_the_retention(
    op_settings: Settings, start_worker: Callable[..., WorkerProcess],
) -> None:
    seed(op_settings, [Spec(trip="29d", age=29 * DAY), Spec(trip="31d", age=31 * DAY)])

    worker = start_worker()

    wait_for(lambda: left(op_settings) == ["29d"], what="the mover to trim the 31-day-old entry")
    wait_for(lambda: "trimmed 1 dead letters older than 30 days" in worker.log(), what="the trim to be logged")
