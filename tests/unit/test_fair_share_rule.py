"""Fair turns between stores (:func:`tasks.pacing.fairness.fair_turn`; BEGIN carries it out in Lua) and a store's intake cap, as tables."""

from __future__ import annotations

import pytest

from tasks.pacing.fairness import HORIZON, CapClocks, Share, StoreClocks, cap_turn, cap_wait, fair_turn
from tasks.store.backlog import MAX_RETRY_AFTER, over_cap, retry_after

NOW = 1_700_000_000.0
PACE = 10.0  # one turn every 0.1 s


@pytest.mark.parametrize(("case", "paused_until", "tat", "clocks", "others", "expected"), [
    ("a-store-alone-takes-the-next-free-turn-and-its-clock-moves-with-the-endpoint",
     0.0, NOW + 0.3, StoreClocks(NOW + 0.3, 0.0), 0,
     Share(NOW + 0.3, None, NOW + 0.4, StoreClocks(NOW + 0.4, 0.0))),
    ("an-idle-endpoint-gives-the-turn-now-and-the-store-may-catch-up-a-horizon",
     0.0, NOW - 5, StoreClocks(), 0,
     Share(NOW, None, NOW + 0.1, StoreClocks(NOW - HORIZON + 0.1, 0.0))),
    ("a-newcomer-takes-the-next-free-turn-however-far-another-store-booked",
     0.0, NOW + 0.9, StoreClocks(), 1,
     Share(NOW + 0.9, None, NOW + 1.0, StoreClocks(NOW + 0.9 - HORIZON + 0.2, 0.0))),
    ("a-store-that-asked-late-keeps-up-to-a-horizon-of-credit",
     0.0, NOW + 0.5, StoreClocks(NOW - 3, 0.0), 1,
     Share(NOW + 0.5, None, NOW + 0.6, StoreClocks(NOW + 0.5 - HORIZON + 0.2, 0.0))),
    ("with-two-stores-waiting-a-clock-moves-two-turns-a-turn",
     0.0, NOW + 0.5, StoreClocks(NOW + 0.6, 0.0), 1,
     Share(NOW + 0.5, None, NOW + 0.6, StoreClocks(NOW + 0.8, 0.0))),
    ("a-turn-after-a-pause",
     NOW + 3, NOW, StoreClocks(), 0,
     Share(NOW + 3, None, NOW + 3.1, StoreClocks(NOW + 3 - HORIZON + 0.1, 0.0))),
    ("past-its-share-a-job-joins-its-store-s-line-and-asks-a-horizon-before-its-place",
     0.0, NOW + 0.5, StoreClocks(NOW + HORIZON + 0.2, 0.0), 1,
     Share(None, NOW + 0.2, NOW + 0.5, StoreClocks(NOW + HORIZON + 0.2, NOW + HORIZON + 0.3))),
    ("the-next-one-behind-it-one-turn-later",
     0.0, NOW + 0.5, StoreClocks(NOW + HORIZON + 0.2, NOW + 4.0), 1,
     Share(None, NOW + 4.0 - HORIZON, NOW + 0.5, StoreClocks(NOW + HORIZON + 0.2, NOW + 4.1))),
])
def test_fair_turn(case: str, paused_until: float, tat: float, clocks: StoreClocks, others: int, expected: Share) -> None:
    got = fair_turn(NOW, paused_until, tat, PACE, clocks, others)
    assert _close(got, expected), (case, got)


def _close(got: Share, expected: Share) -> bool:
    def same(a: float | None, b: float | None) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-6)

    return (same(got.turn, expected.turn) and same(got.ask_at, expected.ask_at) and same(got.tat, expected.tat)
            and same(got.clocks.turn, expected.clocks.turn) and same(got.clocks.line, expected.clocks.line))


def shares(turns: int, stores: dict[str, int], pace: float = PACE, weights: dict[str, float] | None = None) -> tuple[dict[str, int], float]:
    """Every store asks every half turn (each has ``stores[s]`` jobs, and weighs ``weights[s]``, 1 if not named): how many
    of the first ``turns`` turns each took, and the next free turn."""
    weight = {s: (weights or {}).get(s, 1.0) for s in stores}
    now, tat = NOW, 0.0
    clocks = {s: StoreClocks() for s in stores}
    left = dict(stores)
    taken = {s: 0 for s in stores}
    for _ in range(turns * 10):
        for store in stores:
            if not left[store]:
                continue
            others = sum(weight[s] for s in stores if s != store and clocks[s].waiting(now))
            share = fair_turn(now, 0.0, tat, pace, clocks[store], others, weight[store])
            clocks[store] = share.clocks
            if share.turn is not None:
                tat, left[store], taken[store] = share.tat, left[store] - 1, taken[store] + 1
                if sum(taken.values()) == turns:
                    return taken, tat
        now += 1 / pace / 2
    return taken, tat


def test_three_flooding_stores_take_a_third_each_and_a_store_alone_the_whole_pace() -> None:
    assert shares(90, {"A": 600, "B": 300, "C": 30})[0] == {"A": 30, "B": 30, "C": 30}
    alone, tat = shares(50, {"A": 600})
    assert alone == {"A": 50} and abs(tat - (NOW + 50 / PACE)) < 1e-4, "no turn lost: 50 turns in 5 s"


@pytest.mark.parametrize(("stores", "weights", "expected"), [
    ({"A": 600, "B": 600}, {"A": 2.0}, {"A": 200, "B": 100}),
    ({"A": 600, "B": 600, "C": 600}, {"A": 3.0, "B": 0.5}, {"A": 200, "B": 33, "C": 67}),
    ({"A": 600, "B": 600}, {"C": 5.0}, {"A": 150, "B": 150}),  # a store named but not waiting changes nothing
])
def test_weighed_stores_share_the_turns_as_their_weights(stores: dict[str, int], weights: dict[str, float], expected: dict[str, int]) -> None:
    # 30 s at the pace, within 2% of the turns: every store starts with the same horizon of credit, whatever its weight
    taken, _ = shares(300, stores, weights=weights)
    assert all(abs(taken[s] - n) <= 6 for s, n in expected.items()), taken


def test_a_weighed_store_alone_still_gets_the_whole_pace() -> None:
    for weight in (0.5, 4.0):
        alone, tat = shares(50, {"A": 600}, weights={"A": weight})
        assert alone == {"A": 50} and abs(tat - (NOW + 50 / PACE)) < 1e-4, weight


@pytest.mark.parametrize(("open_jobs", "new", "cap", "over"), [
    (0, 5, None, False),      # no cap
    (2, 1, 3, False),         # up to the cap
    (3, 1, 3, True),          # past it
    (0, 4, 3, True),          # one batch past it
    (10, 0, 3, False),        # nothing new asked
])
def test_over_cap(open_jobs: int, new: int, cap: int | None, over: bool) -> None:
    assert over_cap(open_jobs, new, cap) is over


@pytest.mark.parametrize(("open_jobs", "cap", "pace", "seconds"), [
    (100, 100, 30.0, 1),      # a tenth of the cap (10 jobs) at 30/s: under a second, told 1
    (1000, 100, 10.0, 60),    # 900 over + 10, at 10/s: 91 s, told at most a minute
    (1000, 1000, 27.9, 4),    # 100 at 27.9/s
    (500, 1000, None, 1),     # under the cap: at least a second
])
def test_retry_after(open_jobs: int, cap: int, pace: float | None, seconds: int) -> None:
    assert retry_after(open_jobs, cap, pace) == seconds <= MAX_RETRY_AFTER


# --- a store's cap of calls a second (PAYQ_STORE_LIMITS calls_per_second) ---------------------------------------------

CAP = 4.0  # calls a second: 0.25 s apart


@pytest.mark.parametrize(("case", "clocks", "ask_at", "after"), [
    ("never-called", CapClocks(), None, CapClocks()),
    ("its-next-call-is-due", CapClocks(100.0, 0.0), None, CapClocks(100.0, 0.0)),
    ("its-next-call-within-the-wait-in-place", CapClocks(100.2, 0.0), None, CapClocks(100.2, 0.0)),
    ("past-its-cap-joins-the-line-at-its-next-call", CapClocks(101.0, 0.0), 101.0, CapClocks(101.0, 101.25)),
    ("behind-others-in-the-line", CapClocks(101.0, 102.0), 102.0, CapClocks(101.0, 102.25)),
])
def test_a_capped_store_s_job_takes_a_turn_or_waits_in_its_line(case: str, clocks: CapClocks, ask_at: float | None,
                                                                after: CapClocks) -> None:
    assert cap_wait(100.0, 0.5, CAP, clocks) == (ask_at, after), case


@pytest.mark.parametrize(("turn", "clocks", "taken", "after"), [
    (100.0, CapClocks(), 100.0, CapClocks(100.25, 0.0)),             # free: the turn as given, the next a 1/cap on
    (100.0, CapClocks(100.2, 101.0), 100.2, CapClocks(100.45, 101.0)),  # no sooner than its next free call
    (100.7, CapClocks(100.2, 0.0), 100.7, CapClocks(100.95, 0.0)),      # a later endpoint turn: that one
])
def test_a_capped_store_s_turn_is_no_sooner_than_its_next_free_call(turn: float, clocks: CapClocks, taken: float,
                                                                  after: CapClocks) -> None:
    assert cap_turn(turn, CAP, clocks) == (taken, after)
