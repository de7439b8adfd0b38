"""A job the API asks to come back later runs again after that delay, never earlier, and then succeeds."""

from __future__ import annotations

import pytest
import redis

from tasks.producer import Producer
from tests.support.jobs import USD_1, calls, wait_for_state
from tests.support.sandbox import SandboxProcess

DELAY = 2.0
# The worker under test retries transient faults within PAYQ_BACKOFF_CAP=1 s, so
# a second call sooner than DELAY would mean the delay was not followed.
LATEST = DELAY + 0.2 + 3.0  # jitter (PAYQ_RETRY_AFTER_JITTER), then the mover and the worker on a busy machine


@pytest.mark.parametrize("fault", ["429 Retry-After: 2", "503 retryAfter 2"], ids=["429-header", "503-body"])
def test_capture_runs_again_after_the_servers_delay(
    fault: str, producer: Producer, api: SandboxProcess, rdb: redis.Redis, start_worker,
) -> None:
    api.set_faults({"rules": [{"endpoint": "capture", "sequence": [fault]}]})
    start_worker()

    job_id = producer.enqueue_capture(storeId="s1", shoppingTripId="t1", amount=USD_1)
    done = wait_for_state(rdb, job_id, "succeeded")

    first, second, *more = calls(api, "capture")
    assert not more
    assert (first["status"], second["status"]) == (int(fault[:3]), 200)
    assert DELAY <= second["time"] - first["time"] < LATEST
    assert done["attempts"] == "2"
    assert api.trip("s1", "t1")["captured"] == USD_1
