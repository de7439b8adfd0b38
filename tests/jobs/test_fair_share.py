"""Fair share between stores: one store's flood does not hold every other store's payments (issue #36).

The sandbox limits the capture endpoint to 30 calls in any one-second window and
``PAYQ_RATE_LIMITS`` says so, as an operator would configure it: payq paces it at
93% of that. Two worker processes take the jobs. A call's store is read from
the body the sandbox logged; every setting but the limit is at its default.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import redis

from payapi.operations import Operation
from tasks.producer import Producer, prepare
from tests.support.jobs import USD_1, body, calls, record, wait_for_state
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.worker import WorkerProcess

LIMIT = 30
RETRY_AFTER = 1


def limit_captures(api: SandboxProcess, start_worker: Callable[..., WorkerProcess]) -> None:
    api.set_faults({"rules": [], "rate_limits": {"capture": {"per_second": LIMIT, "retry_after": RETRY_AFTER}}})
    env = {"PAYQ_RATE_LIMITS": json.dumps({"capture": LIMIT})}
    start_worker(env=env), start_worker(env=env)


def captures(producer: Producer, store: str, count: int) -> list[str]:
    return producer.publish([
        prepare("capture", {"storeId": store, "shoppingTripId": f"t{i}", "amount": USD_1}) for i in range(count)
    ])


def store_calls(api: SandboxProcess) -> list[tuple[float, str]]:
    """(time, store) of every capture call the sandbox accepted, oldest first (a call bunched on a loaded machine can draw a 429)."""
    return [(c["time"], body(c)["storeId"]) for c in calls(api, Operation.CAPTURE) if c["status"] < 300]


def settle(rdb: redis.Redis, job_ids: list[str], timeout: float) -> None:
    for job_id in job_ids:
        wait_for_state(rdb, job_id, "succeeded", timeout=timeout)


def first_look(rdb: redis.Redis, job_ids: list[str]) -> float:
    """When a worker first looked at any of ``job_ids`` (its first BEGIN: a first deferral, or a first attempt)."""
    looks = []
    for job_id in job_ids:
        first = rdb.lindex(f"payq:job:{job_id}:deferrals", 0)
        looks += [json.loads(first)["at"]] if first else []
        looks += [float(at)] if (at := record(rdb, job_id).get("first_attempt_at")) else []  # as a settled record reads back
    return min(looks)


def test_a_small_store_is_not_held_behind_a_flooding_one(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    limit_captures(api, start_worker)
    flood = captures(producer, "A", 600)
    wait_for(lambda: len(calls(api, Operation.CAPTURE)) >= LIMIT or None, timeout=15, what="store A's flood under way")

    small = captures(producer, "B", 10)
    enqueued = float(rdb.hget(f"payq:job:{small[0]}", "enqueued_at") or 0)
    settle(rdb, small, timeout=60)
    settle(rdb, flood, timeout=60)

    seen = store_calls(api)
    b_calls = [t for t, store in seen if store == "B"]
    assert len(b_calls) == 10 and sum(1 for _, store in seen if store == "A") == 600
    # Before fair turns B's went out after all of A's (20 s). Now B's lane is taken in turn with A's, so the workers look
    # at B's jobs at once rather than after every message of A's queued before them (under load, near the end of A's
    # drain: per-store lanes, docs/pacing-and-trips.md), and B shares the turns from its first ask.
    looked = first_look(rdb, small)
    assert looked - enqueued <= 2.0, f"the workers first looked at B's captures {looked - enqueued:.1f} s after their enqueue"
    assert max(b_calls) - enqueued <= 5.0, (
        f"store B's captures reached the API {max(b_calls) - enqueued:.1f} s after their enqueue "
        f"({max(b_calls) - looked:.1f} s after B's first ask), not within 5 s beside A's backlog")
    # and A's turns were not spent on B's behalf: all of A's calls still went out (the pace itself, against the ideal,
    # is the benchmark's to measure: a test on a loaded machine cannot keep a pace, shared or not)
    a_after_b = sum(1 for t, store in seen if store == "A" and t > max(b_calls))
    assert a_after_b >= 100, f"only {a_after_b} of A's calls came after B's last: B waited behind A's backlog"


def test_three_stores_share_the_pace_the_small_one_not_held_behind_the_others_and_a_refund_still_waits_for_its_capture(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    limit_captures(api, start_worker)
    big = captures(producer, "A", 600)
    middle = captures(producer, "B", 300)
    small = captures(producer, "C", 10)
    refund = producer.publish([prepare("refund", {
        "storeId": "A", "shoppingTripId": "t599", "amount": {"amount": "0.50", "code": "USD"}, "refundReasonCode": "OTHER",
    })])[0]

    settle(rdb, small + middle + big, timeout=120)
    wait_for_state(rdb, refund, "succeeded", timeout=30)

    seen = store_calls(api)
    c_calls = [t for t, store in seen if store == "C"]
    first_c, last_c = min(c_calls), max(c_calls)
    # C, enqueued last, is not served last: first come, first served, its 10 went out after all 900 of A's and B's
    after_c = sum(1 for t, store in seen if store in "AB" and t > last_c)
    assert after_c >= 50, f"only {after_c} of A's and B's calls came after C's last: C was held behind the others"
    # while all three wait, the two big stores share the calls evenly: C's share, a third on a quiet machine, is
    # less where the machine is loaded (its few jobs come back from the deferred set late: docs/pacing-and-trips.md)
    all_three = Counter(store for t, store in seen if first_c <= t <= last_c)
    assert abs(all_three["A"] / (all_three["A"] + all_three["B"]) - 1 / 2) <= 0.1, all_three
    assert all_three["C"] / sum(all_three.values()) >= 0.1, all_three
    # then A and B halve the calls while both wait
    last_b = max(t for t, store in seen if store == "B")
    both = Counter(store for t, store in seen if last_c < t <= last_b)
    assert abs(both["A"] / (both["A"] + both["B"]) - 1 / 2) <= 0.1, both
    # fairness reorders stores, never a trip's own jobs: the refund went out after its capture succeeded
    captured_at = float(rdb.hget(f"payq:job:{big[599]}", "updated_at") or 0)
    refunded = [c["time"] for c in calls(api, Operation.REFUND)]
    assert refunded and min(refunded) >= captured_at


def test_a_store_weighing_2_in_store_limits_takes_two_turns_to_another_stores_one(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    api.set_faults({"rules": [], "rate_limits": {"capture": {"per_second": LIMIT, "retry_after": RETRY_AFTER}}})
    env = {"PAYQ_RATE_LIMITS": json.dumps({"capture": LIMIT}), "PAYQ_STORE_LIMITS": json.dumps({"A": {"weight": 2}})}
    start_worker(env=env), start_worker(env=env)
    heavy = captures(producer, "A", 300)
    other = captures(producer, "B", 300)

    settle(rdb, heavy + other, timeout=120)

    seen = store_calls(api)
    last_a = max(t for t, store in seen if store == "A")
    first_b = min(t for t, store in seen if store == "B")
    # while both wait (from B's first call to A's last): two of A's calls to one of B's
    both = Counter(store for t, store in seen if first_b <= t <= last_a)
    assert abs(both["A"] / (both["A"] + both["B"]) - 2 / 3) <= 0.1, both


def test_a_store_capped_at_calls_a_second_makes_no_more_while_another_store_s_jobs_run_unheld(
    api: SandboxProcess, producer: Producer, rdb: redis.Redis, start_worker: Callable[..., WorkerProcess],
) -> None:
    # no pace at the endpoint: only store A's own cap (PAYQ_STORE_LIMITS calls_per_second) holds its jobs back
    cap = 4
    start_worker(env={"PAYQ_STORE_LIMITS": json.dumps({"A": {"calls_per_second": cap}})})
    capped = captures(producer, "A", 12)
    enqueued = float(rdb.hget(f"payq:job:{capped[0]}", "enqueued_at") or 0)
    free = captures(producer, "B", 12)

    settle(rdb, capped + free, timeout=60)

    seen = store_calls(api)
    a_calls = sorted(t for t, store in seen if store == "A")
    b_calls = sorted(t for t, store in seen if store == "B")
    assert len(a_calls) == len(b_calls) == 12
    # A's turns a quarter of a second apart from its first ask, and no call before its turn (a late one may come later):
    # its k-th call no sooner than k / cap after the enqueue, where without the cap all twelve go out at once
    early = [(k, round(t - enqueued, 3)) for k, t in enumerate(a_calls) if t < enqueued + k / cap - 0.02]
    assert early == [], f"store A's calls before their turn at {cap}/s (call, seconds after enqueue): {early}"
    # B's jobs were not held behind A's capped ones: all of B's went out before A's last
    assert max(b_calls) < max(a_calls), "store B's captures waited behind store A's capped ones"
