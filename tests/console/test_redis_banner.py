"""The console says when Redis's replicas leave payq degraded or refusing work, on every page (issue 29)."""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests.console.conftest import PASSWORD, USER
from tests.support.serve import ServeProcess

AUTH = (USER, PASSWORD)


def test_every_page_carries_a_banner_while_payq_refuses_work_below_its_replica_floor(
    start_console: Callable[..., ServeProcess],
) -> None:
    refusing = start_console(PAYQ_REDIS_MIN_REPLICAS="1")  # one Redis, no replica: below the floor
    safe = start_console()

    for path in ("/console/", "/console/dead-letters", "/console/workers"):
        page = refusing.request("GET", path, auth=AUTH)
        assert page.status_code == 200 and 'id="redis-degraded"' in page.text, path
        assert "Refusing work" in page.text and "PAYQ_REDIS_MIN_REPLICAS" in page.text
        assert 'id="redis-degraded"' not in safe.request("GET", path, auth=AUTH).text
    assert refusing.request("GET", "/readyz").status_code == 503
    assert safe.request("GET", "/readyz").json() == {"ready": True, "degraded": False, "replicasInSync": 0}


def test_every_page_and_readyz_warn_while_redis_is_near_its_maxmemory(
    start_console: Callable[..., ServeProcess], redis_url: str,
) -> None:
    console = start_console()
    client = redis.Redis.from_url(redis_url)
    for path in ("/console/", "/console/dead-letters"):
        assert 'id="redis-memory"' not in console.request("GET", path, auth=AUTH).text, "no maxmemory: nothing to warn of"
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", int(used / 0.9))  # 90% full: writes still taken, the limit near
    try:
        for path in ("/console/", "/console/dead-letters", "/console/workers"):
            page = console.request("GET", path, auth=AUTH)
            assert page.status_code == 200 and 'id="redis-memory"' in page.text, path
            assert "Redis nearly full" in page.text and "maxmemory" in page.text
        ready = console.request("GET", "/readyz")
        assert ready.status_code == 200 and "full" in ready.json()["warning"], "still ready: a warning, not out of rotation"
    finally:
        client.config_set("maxmemory", 0)
        client.close()
