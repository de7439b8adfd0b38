"""The Workers page in headless Chromium: who holds a running job, and a killed worker shown apart once another gives its job back.

Real parts: a private Redis, the sandbox (its capture hangs, so the job stays
in a worker's hands), two ``celery -A workers.app worker`` processes and
``payq serve``. The lease is 2 s (its floor) so that a killed worker's lease
lapses within the test's few seconds; everything else is at its default. And the
panel's reads, bounded however many workers and leases Redis holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page

from config.settings import Settings
from payq.serve.console import fleet
from tasks.producer import Producer
from tasks.redis import keys
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess
from workers.runtime import Runtime

LEASE = {"PAYQ_LEASE_SECONDS": "2"}
USD = {"amount": "12.34", "code": "USD"}


def workers_in(page: Page, table: str) -> dict[str, list[str]]:
    """Each worker the table lists, with the ids of the jobs it holds."""
    rows: dict[str, list[str]] = page.locator(f"#{table} tbody tr").evaluate_all(
        "rows => Object.fromEntries(rows.map(r => [r.dataset.worker, [...r.querySelectorAll('li')].map(li => li.dataset.id)]))")
    return rows


def test_the_workers_page_shows_who_holds_a_running_job_and_a_killed_worker_apart_once_its_job_is_given_back(
    start_console: Callable[..., ServeProcess], signed_in: Callable[..., Page], producer: Producer, api: SandboxProcess,
    start_worker: Callable[..., WorkerProcess], settings: Settings,
) -> None:
    # every call of this capture hangs past the test: whoever holds it keeps it running
    api.set_faults({"rules": [{"endpoint": "capture", "shoppingTripId": "t-held", "sequence": ["hang 30", "hang 30"]}]})
    env = {**LEASE, "PAYQ_HTTP_READ_TIMEOUT": "30"}
    by_pid = {str(w.pid): w for w in (start_worker(env=env), start_worker(env=env))}
    console = start_console(**LEASE)
    rt = Runtime.build(settings)
    job_id = producer.enqueue_capture(storeId="s-w", shoppingTripId="t-held", amount=USD)

    def holder(not_this: str = "") -> str | Any:
        record = rt.jobs.get(job_id) or {}
        return record.get("state") == "running" and record.get("holder") not in (None, "", not_this) and record["holder"]

    first = wait_for(holder, what="a worker to hold the capture")
    page = signed_in(console)
    page.goto("/console/")
    assert page.locator("#overview-live-workers").inner_text() == "2"
    page.click("#workers a")
    assert page.url.endswith("/console/workers") and page.locator("nav a[aria-current=page]").inner_text() == "Workers"
    live = workers_in(page, "live")
    assert len(live) == 2 and live[first] == [job_id] and [jobs for w, jobs in live.items() if w != first] == [[]]
    assert "lease ends in" in page.locator(f"#live li[data-id='{job_id}']").inner_text()
    assert page.locator("#jobs-held").inner_text() == "1" and page.locator("#recovered").inner_text() == "0"
    assert page.locator("#stopped").inner_text().startswith("None")

    by_pid[first.rsplit(".", 2)[1]].kill()  # the holder crashes with the job in hand (its id: host.pid.random)
    second = wait_for(lambda: holder(not_this=first), what="the other worker to be given the capture and hold it")
    page.reload()
    assert workers_in(page, "live") == {second: [job_id]}
    assert workers_in(page, "stopped") == {first: []}, "the killed worker is shown apart, its job no longer its own"
    assert page.locator(f"#live tr[data-worker='{second}'] .steady").inner_text() == "yes", "it gave the job back: it is steady"
    assert page.locator("#recovered").inner_text() == "1" == str(rt.leases.recovered())

    page.click(f"#live a:text('{job_id}')")
    assert page.url.endswith(f"/console/jobs/{job_id}") and "running" in page.locator("main").inner_text()
    assert page.locator("#holder").inner_text().startswith(f"{second}, its lease ending ")


def test_the_panel_reads_at_most_its_bounds_however_many_workers_and_leases_and_says_how_many_there_are(op_settings: Settings) -> None:
    rt = Runtime.build(op_settings)
    now = rt.leases.now()
    pipe = rt.redis.pipeline(transaction=False)
    pipe.zadd(keys.WORKERS, {f"w{i:03}": now - i * 0.01 for i in range(fleet.MAX_WORKERS + 50)})
    pipe.zadd(keys.WORKERS, {"long-gone": now - fleet.RECENTLY_DEAD - 60})  # kept a day by the heartbeats, off the panel after an hour
    pipe.zadd(keys.LEASES, {f"j{i:03}": now + 5 + i for i in range(fleet.MAX_HELD + 100)})
    for i in range(fleet.MAX_HELD + 100):
        pipe.hset(keys.job(f"j{i:03}"), mapping={"holder": f"w{i % 3:03}", "op": "cancel", "state": "running"})
    pipe.set(keys.RECOVERED, 7)
    pipe.execute()

    seen = fleet.read(rt.redis, op_settings.lease_seconds)
    assert [w.worker for w in seen.live][:3] == ["w000", "w001", "w002"] and len(seen.live) == fleet.MAX_WORKERS
    assert (seen.workers_total, seen.held, seen.held_total, seen.recovered) == (fleet.MAX_WORKERS + 50, fleet.MAX_HELD, fleet.MAX_HELD + 100, 7)
    assert [j.job_id for j in seen.live[0].jobs][:2] == ["j000", "j003"], "the leases ending soonest are the ones read"
    assert not seen.stopped and not seen.unlisted
