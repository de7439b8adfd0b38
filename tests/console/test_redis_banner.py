"""The console says when Redis's replicas leave payq degraded or refusing work, on every page (issue 29)."""

from __future__ import annotations

from collections.abc import Callable

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
