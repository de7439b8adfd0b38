"""A worker's degraded state (workers/degraded.py): what a fault or a look means, and one line on entering, each minute, and on leaving."""

from __future__ import annotations

import logging

import pytest
import redis
from celery.exceptions import Reject

from payapi.errors import NotReplicated
from tasks.redis.replicas import ReplicaState, Sighting
from workers.degraded import Degraded, DropConnectionLossLecture, DropReconnectAttempts, DropRejectReport, Trouble, trouble_after

SAFE = Sighting(1, 1, 0, ReplicaState.SAFE)
LONE = Sighting(0, 0, 0, ReplicaState.DEGRADED)
BELOW = Sighting(0, 0, 1, ReplicaState.REFUSING)


@pytest.mark.parametrize(
    ("seen", "fault", "trouble"),
    [
        pytest.param(None, redis.ConnectionError("refused"), Trouble.REDIS_AWAY, id="redis-refuses-connections"),
        pytest.param(None, redis.TimeoutError("timed out"), Trouble.REDIS_AWAY, id="redis-times-out"),
        pytest.param(None, NotReplicated("0 of 1"), Trouble.BELOW_FLOOR, id="a-write-short-of-the-floor"),
        pytest.param(None, ValueError("a bug"), None, id="not-redis"),
        pytest.param(SAFE, None, None, id="a-replica-in-sync"),
        pytest.param(LONE, None, Trouble.LONE_PRIMARY, id="none-in-sync-floor-0"),
        pytest.param(BELOW, None, Trouble.BELOW_FLOOR, id="below-the-floor"),
    ],
)
def test_what_a_fault_or_a_look_at_redis_means(seen: Sighting | None, fault: BaseException | None, trouble: Trouble | None) -> None:
    assert trouble_after(seen, fault) is trouble


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_worker_below_the_floor_takes_no_work_and_says_so_once_a_minute_not_at_every_fault(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    degraded = Degraded(clock)
    caplog.set_level(logging.WARNING, logger="payq.degraded")

    for _ in range(100):  # every job and thread that meets it
        degraded.fault(NotReplicated("only 0 of 1 replicas"))
        degraded.saw(BELOW)
        degraded.remind()
    assert not degraded.may_fetch()
    clock.now = 59.0
    degraded.remind()
    clock.now = 61.0
    for _ in range(10):
        degraded.remind()
    clock.now = 130.0
    degraded.saw(SAFE)

    assert degraded.may_fetch()
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["degraded", "degraded for 61 s", "no longer degraded after 2 min (below-floor)"]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_worker_takes_work_only_once_it_looked_at_redis() -> None:
    degraded = Degraded(Clock())

    assert not degraded.may_fetch()
    degraded.saw(SAFE)
    assert degraded.may_fetch() and degraded.trouble is None


def test_with_the_primary_alone_a_worker_goes_on_degraded() -> None:
    degraded = Degraded(Clock())

    degraded.saw(LONE)
    assert (degraded.trouble, degraded.may_fetch()) == (Trouble.LONE_PRIMARY, True)
    degraded.fault(redis.ConnectionError("refused"))
    assert (degraded.trouble, degraded.may_fetch()) == (Trouble.REDIS_AWAY, False)
    degraded.saw(LONE)
    assert (degraded.trouble, degraded.may_fetch()) == (Trouble.LONE_PRIMARY, True)


def test_a_job_waiting_to_work_gives_up_when_the_worker_shuts_down() -> None:
    degraded = Degraded(Clock())
    degraded.fault(redis.ConnectionError("refused"))
    degraded.stop()

    assert degraded.wait_to_work(look_every=0.01) is False
    degraded.saw(SAFE)
    assert degraded.wait_to_work(look_every=0.01) is True


def test_what_celery_says_of_an_expected_condition_payq_says_once_is_dropped() -> None:
    def record(logger: str, msg: str, exc: BaseException | None = None) -> logging.LogRecord:
        return logging.LogRecord(logger, logging.WARNING, __file__, 1, msg, (), (type(exc), exc, None) if exc else None)

    rejected = record("celery.app.trace", "Task %(name)s[%(id)s] %(description)s: %(exc)s", Reject("Redis away", requeue=True))
    failed = record("celery.app.trace", "Task %(name)s[%(id)s] %(description)s: %(exc)s", ValueError("a bug"))
    retry = record("celery.worker.consumer.consumer", "consumer: Cannot connect to %s: %s.\n%s\n")
    lost = record("celery.worker.consumer.consumer", "consumer: Connection to broker lost. Trying to re-establish the connection...")
    lecture = record("py.warnings", "consumer.py:427: CPendingDeprecationWarning: ... worker_cancel_long_running_tasks_on_connection_loss ...")

    assert [DropRejectReport().filter(r) for r in (rejected, failed)] == [False, True]
    assert [DropReconnectAttempts().filter(r) for r in (retry, lost)] == [False, True]
    assert DropConnectionLossLecture().filter(lecture) is False
