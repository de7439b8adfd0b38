"""Replicas as they are, with a floor (tasks/redis/replicas.py): which are in sync, who leaves after a missed WAIT, and what it means."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.redis.replicas import Replica, ReplicaState, in_sync, left_behind, replicas_in, state_of, still_behind

A, B = "10.0.0.1:6379", "10.0.0.2:6379"


def replica(address: str, *, online: bool = True, offset: int = 1000, lag: int = 0) -> Replica:
    return Replica(address, online, offset, lag)


def test_replicas_are_read_from_info_replication() -> None:
    info: dict[str, Any] = {"role": "master", "connected_slaves": 2, "master_repl_offset": 1500,
                            "slave0": {"ip": "10.0.0.1", "port": 6379, "state": "online", "offset": 1500, "lag": 0},
                            "slave1": {"ip": "10.0.0.2", "port": 6379, "state": "wait_bgsave", "offset": 0, "lag": 7}}

    assert replicas_in(info) == [replica(A, offset=1500), replica(B, online=False, offset=0, lag=7)]


@pytest.mark.parametrize(
    ("found", "behind", "synced"),
    [
        pytest.param([replica(A), replica(B, lag=1)], {}, [A, B], id="online-acknowledged-within-a-second"),
        pytest.param([replica(A, lag=2)], {}, [], id="fallen-behind"),
        pytest.param([replica(A, online=False)], {}, [], id="still-syncing"),
        pytest.param([replica(A, offset=900), replica(B)], {A: 1000}, [B], id="missed-a-wait-not-caught-up"),
        pytest.param([replica(A, offset=1000)], {A: 1000}, [A], id="missed-a-wait-caught-up"),
    ],
)
def test_a_replica_is_in_sync_online_recent_and_caught_up_with_any_wait_it_missed(
    found: list[Replica], behind: dict[str, int], synced: list[str],
) -> None:
    assert [r.address for r in in_sync(found, behind)] == synced


def test_a_wait_two_of_three_missed_puts_the_two_furthest_behind_out_until_they_reach_the_primarys_offset() -> None:
    synced = [replica(A, offset=990), replica(B, offset=900), replica("c:1", offset=1000)]

    assert left_behind(synced, 2, 1200) == {B: 1200, A: 1200}


def test_a_replica_leaves_the_behind_list_once_it_caught_up_or_is_gone() -> None:
    behind = {A: 1200, B: 1200}

    assert still_behind(behind, [replica(A, offset=1100), replica(B, offset=1200)]) == {A: 1200}
    assert still_behind(behind, [replica(B, offset=1199)]) == {B: 1200}


@pytest.mark.parametrize(
    ("synced", "floor", "expected", "state"),
    [
        pytest.param(1, 0, True, ReplicaState.SAFE, id="a-replica-in-sync"),
        pytest.param(0, 0, False, ReplicaState.SAFE, id="one-redis-none-expected"),
        pytest.param(0, 0, True, ReplicaState.DEGRADED, id="failover-left-none-floor-0-goes-on"),
        pytest.param(0, 1, True, ReplicaState.REFUSING, id="none-left-floor-1-refuses"),
        pytest.param(1, 2, True, ReplicaState.REFUSING, id="one-left-floor-2-refuses"),
        pytest.param(2, 2, True, ReplicaState.SAFE, id="at-the-floor"),
    ],
)
def test_below_the_floor_payq_refuses_and_with_none_in_sync_where_one_is_expected_it_is_degraded(
    synced: int, floor: int, expected: bool, state: ReplicaState,
) -> None:
    assert state_of(synced, floor, expected) is state
