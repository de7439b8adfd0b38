"""BEGIN carries out :func:`tasks.pacing.fairness.fair_turn` exactly: the same table, run through ``begin.lua`` on a real Redis."""

from __future__ import annotations

import time

import pytest
import redis

from payapi.operations import Operation
from tasks.pacing.fairness import HORIZON, CapClocks, StoreClocks, cap_turn, cap_wait, fair_turn
from tasks.redis import keys
from tasks.states import Verdict
from tasks.store.records import JobStore

PACE = 10.0
WAIT_IN_PLACE = 0.5


@pytest.mark.parametrize(("case", "tat", "clocks", "others", "weights"), [
    ("alone-at-the-endpoint-s-next-turn", 0.3, StoreClocks(0.3, 0.0), 0, {}),
    ("an-idle-endpoint", -5.0, StoreClocks(), 0, {}),
    ("a-newcomer-beside-a-booked-store", 0.9, StoreClocks(), 1, {}),
    ("two-waiting-a-clock-ahead", 0.5, StoreClocks(0.6, 0.0), 1, {}),
    ("three-waiting-a-late-store-catches-up", 0.5, StoreClocks(-3.0, 0.0), 2, {}),
    ("past-its-share-joins-its-line", 0.5, StoreClocks(HORIZON + 0.2, 0.0), 1, {}),
    ("behind-others-in-its-line", 0.5, StoreClocks(HORIZON + 0.2, 4.0), 1, {}),
    # PAYQ_STORE_LIMITS: a store's own weight, and a waiting one's (a store named but not waiting counts for nothing)
    ("weighing-3-beside-one-other", 0.5, StoreClocks(0.6, 0.0), 1, {"S": 3.0}),
    ("beside-a-waiting-store-weighing-4", 0.5, StoreClocks(0.6, 0.0), 2, {"other0": 4.0, "not-waiting": 9.0}),
    ("weighing-half-alone", 0.3, StoreClocks(0.3, 0.0), 0, {"S": 0.5}),
])
def test_begin_gives_the_turn_the_rule_gives(case: str, tat: float, clocks: StoreClocks, others: int, weights: dict[str, float],
                                            rdb: redis.Redis) -> None:
    now = time.time()
    op = Operation.CAPTURE
    rdb.hset(keys.pace(op), "tat", repr(now + tat))
    if clocks != StoreClocks():
        rdb.hset(keys.fair_clocks(op), mapping={"turn:S": repr(now + clocks.turn), "line:S": repr(now + clocks.line)})
        if clocks.waiting(0.0):
            rdb.zadd(keys.fair_waiting(op), {"S": now + max(clocks.turn, clocks.line)})
    for i in range(others):
        rdb.zadd(keys.fair_waiting(op), {f"other{i}": now + 5})
    absolute = StoreClocks(now + clocks.turn, now + clocks.line) if clocks != StoreClocks() else clocks
    others_weight = sum(weights.get(f"other{i}", 1.0) for i in range(others))
    share = fair_turn(now, 0.0, now + tat, PACE, absolute, others_weight, weights.get("S", 1.0))

    job_id = f"capture:S:{case}"
    rdb.hset(keys.job(job_id), mapping={"op": op.value, "state": "queued", "attempts": 0, "enqueued_at": repr(now)})  # as enqueue records it
    begun = JobStore(rdb, 86400).begin(job_id, op, "w@host", now, "1", 10.0,
                                       PACE, WAIT_IN_PLACE, holder="w", claim="c", store="S", fair_horizon=HORIZON,
                                       weights=weights)

    stored = rdb.hgetall(keys.fair_clocks(op))
    assert float(stored["turn:S"]) == pytest.approx(share.clocks.turn, abs=1e-3), case
    assert float(stored["line:S"]) == pytest.approx(share.clocks.line, abs=1e-3), case
    assert float(rdb.hget(keys.pace(op), "tat") or 0) == pytest.approx(share.tat, abs=1e-3), case
    if share.turn is None:
        assert begun.verdict is Verdict.QUEUED and begun.until == pytest.approx(share.ask_at, abs=1e-3), case
    else:
        expected = Verdict.RUN if share.turn - now <= WAIT_IN_PLACE else Verdict.PACED
        assert begun.verdict is expected and begun.until == pytest.approx(share.turn, abs=1e-3), case


CAP = 4.0


@pytest.mark.parametrize(("case", "pace", "clocks"), [
    ("unpaced-never-called", 0.0, CapClocks()),
    ("unpaced-next-call-within-the-wait", 0.0, CapClocks(0.3, 0.0)),
    ("unpaced-past-its-cap", 0.0, CapClocks(1.0, 0.0)),
    ("unpaced-behind-its-line", 0.0, CapClocks(1.0, 2.0)),
    ("paced-never-called", PACE, CapClocks()),
    ("paced-past-its-cap", PACE, CapClocks(1.0, 0.0)),
])
def test_begin_caps_a_store_s_calls_as_the_rule_says(case: str, pace: float, clocks: CapClocks, rdb: redis.Redis) -> None:
    now = time.time()
    op = Operation.CAPTURE
    if clocks != CapClocks():
        rdb.hset(keys.fair_clocks(op), mapping={"cap:S": repr(now + clocks.next), "capline:S": repr(now + clocks.line)})
    absolute = CapClocks(now + clocks.next, now + clocks.line) if clocks != CapClocks() else clocks
    ask_at, waiting = cap_wait(now, WAIT_IN_PLACE, CAP, absolute)

    job_id = f"capture:S:{case}"
    rdb.hset(keys.job(job_id), mapping={"op": op.value, "state": "queued", "attempts": 0, "enqueued_at": repr(now)})
    begun = JobStore(rdb, 86400).begin(job_id, op, "w@host", now, "1", 10.0, pace, WAIT_IN_PLACE, holder="w", claim="c",
                                       store="S", fair_horizon=HORIZON, store_cap=CAP)

    stored = rdb.hgetall(keys.fair_clocks(op))
    if ask_at is not None:
        assert begun.verdict is Verdict.QUEUED and begun.until == pytest.approx(ask_at, abs=1e-3), case
        assert float(stored["capline:S"]) == pytest.approx(waiting.line, abs=1e-3), case
        assert rdb.hget(keys.job(job_id), "attempts") == "0", "nothing claimed"
    else:
        turn = now if pace == 0 else float(begun.until or 0)  # a paced endpoint's turn is the pace's (its own table above)
        taken, after = cap_turn(turn, CAP, absolute)
        assert begun.verdict is Verdict.RUN and begun.until == pytest.approx(taken, abs=1e-3), case
        assert float(stored["cap:S"]) == pytest.approx(after.next, abs=1e-3), case
