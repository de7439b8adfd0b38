"""One patience (tasks/redis/patience.py): a deadline, waits that double to a second, faults re-raised at the end; clock and sleep pinned."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import pytest
import redis

from payapi.errors import NotReplicated
from tasks.redis.patience import Patience, waits


class Clock:
    """A clock that moves only when the patience sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def failing(times: int, fault: BaseException, result: str = "done") -> tuple[list[int], object]:
    tries: list[int] = []

    def step() -> str:
        tries.append(1)
        if len(tries) <= times:
            raise fault
        return result

    return tries, step


def test_the_waits_double_from_a_tenth_of_a_second_to_one_second() -> None:
    assert list(islice(waits(), 7)) == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_a_step_that_meets_a_connection_fault_is_tried_again_until_it_works() -> None:
    clock = Clock()
    tries, step = failing(3, redis.ConnectionError("refused"))
    told: list[BaseException] = []

    assert Patience.of(10, clock, clock.sleep).call(step, on_fault=told.append) == "done"  # type: ignore[arg-type]
    assert (len(tries), clock.slept, len(told)) == (4, [0.1, 0.2, 0.4], 3)


def test_at_the_deadline_the_fault_is_raised_without_a_wait_past_it() -> None:
    clock = Clock()
    _, step = failing(100, redis.TimeoutError("timed out"))

    with pytest.raises(redis.TimeoutError, match="timed out"):
        Patience.of(2.0, clock, clock.sleep).call(step)  # type: ignore[arg-type]
    assert sum(clock.slept) <= 2.0 and clock.slept == [0.1, 0.2, 0.4, 0.8]


def test_a_fault_it_was_not_given_is_raised_at_once() -> None:
    clock = Clock()
    tries, step = failing(1, NotReplicated("0 of 1"))

    with pytest.raises(NotReplicated):
        Patience.of(10, clock, clock.sleep).call(step)  # type: ignore[arg-type]
    assert (len(tries), clock.slept) == (1, [])
    assert Patience.of(10, clock, clock.sleep).call(step, faults=(NotReplicated,)) == "done"  # type: ignore[arg-type]


def test_extending_counts_from_the_deadline_or_from_now_whichever_is_later() -> None:
    clock = Clock()
    patience = Patience.of(30, clock, clock.sleep)

    assert patience.extended(60).deadline == 190.0
    clock.now = 200.0  # the call outlasted the first deadline: the outcome still gets its whole extension
    assert patience.extended(60).deadline == 260.0
    assert patience.left() == -70.0


def test_the_async_form_waits_the_same_way_without_blocking() -> None:
    clock = Clock()
    tries: list[int] = []

    async def step() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise redis.ConnectionError("refused")
        return "done"

    patience = Patience(clock() + 10, clock, clock.sleep, clock.asleep)

    # a thread of its own: another test in this process may have left an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, patience.call_async(step)).result() == "done"
    assert clock.slept == [0.1, 0.2]
