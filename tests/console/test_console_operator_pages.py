"""The console's newer pages and actions in headless Chromium, against a real ``payq serve`` and a private Redis.

The dead letters as a list an operator works through (the error on each row,
oldest or newest first, a whole page ticked, everything matching purged after
a confirmation), the jobs that are not dead (by state, operation and store;
each job's page), and lifting an endpoint's pause and learned pace.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import Page

from config.settings import Settings
from payapi.operations import QUEUES, Operation
from tasks.jobs.deferral import Deferral
from tasks.producer import prepare
from tasks.redis import keys
from tasks.states import DeferCause
from tasks.store import lanes
from tests.console.conftest import follow
from tests.support.deadletters import Spec, seed
from tests.support.jobs import calls, wait_for_state
from tests.support.sandbox import SandboxProcess
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess
from workers.runtime import Runtime

PAUSED_FOR = 600.0


def listed(page: Page) -> list[str]:
    """The job ids of the rows the page's table shows (dead letters or jobs)."""
    return page.locator("table.entries tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")


def test_an_operator_reads_each_error_in_the_list_sorts_ticks_a_page_and_purges_all_that_match(
    console: ServeProcess, signed_in: Callable[..., Page], op_settings: Settings,
) -> None:
    old, middle, new = seed(op_settings, [Spec(trip="d3", store="s2", age=300), Spec(trip="d2", store="s2", age=200), Spec(trip="d1", store="s2", age=100)])
    [kept] = seed(op_settings, [Spec(trip="k1", store="s1", age=50)])
    [told] = seed(op_settings, [Spec(trip="n1", store="s1", operation="notify", reason="notify-failed", status=500, age=10)])
    rt = Runtime.build(op_settings)
    page = signed_in(console)

    page.goto("/console/dead-letters")
    assert listed(page) == [told.id, kept.id, new.id, middle.id, old.id]
    assert page.locator(f"tr[data-id='{old.id}'] td.error").inner_text() == old.error, "the error is on the row"
    assert old.error.startswith("HTTP 400")
    notification_row = page.locator(f"tr[data-id='{told.id}']").inner_text()
    assert "job.dead_lettered of capture:s1:n1" in notification_row and "s1" in notification_row

    follow(page, "#sort")
    assert listed(page) == [old.id, middle.id, new.id, kept.id, told.id]
    assert "oldest first" in page.locator("#summary").inner_text()

    page.goto("/console/dead-letters?store=s2")
    assert listed(page) == [new.id, middle.id, old.id]
    assert page.locator("input[name=id]:checked").count() == 0
    page.click("#select-page")
    assert page.locator("input[name=id]:checked").count() == 3
    page.click("#purge-selected")
    assert page.locator("h1").inner_text() == "Purge 3 dead letters for good?"
    assert "stay in the dead letters until an operator replays them" in page.locator("#purge-warning").inner_text()
    page.click("text=cancel")
    assert len(rt.dead_letters.list()) == 5, "nothing is purged before the confirmation"

    page.goto("/console/dead-letters?store=s2")
    page.click("#purge-all")
    assert page.locator("#count strong").inner_text() == "3"
    late = seed(op_settings, [Spec(trip="d0", store="s2")])  # dead-lettered after the confirmation was shown: left alone
    page.click("#confirm")
    assert page.locator("#outcome").inner_text().startswith("purged 3 dead letters")
    assert sorted(e.id for e in rt.dead_letters.list()) == sorted([kept.id, told.id, late[0].id])


def test_the_jobs_page_lists_live_jobs_by_state_operation_and_store_each_linked_to_its_page(
    console: ServeProcess, signed_in: Callable[..., Page], op_settings: Settings,
) -> None:
    rt = Runtime.build(op_settings)
    now = time.time()
    usd = {"amount": "0.10", "code": "USD"}
    capture = prepare("capture", {"storeId": "s1", "shoppingTripId": "t1", "amount": usd})
    refund = prepare("refund", {"storeId": "s1", "shoppingTripId": "t1", "amount": usd, "refundReasonCode": "DAMAGED_ITEM"})
    other = prepare("capture", {"storeId": "s2", "shoppingTripId": "t2", "amount": usd})
    deferred = prepare("cancel", {"storeId": "s3", "shoppingTripId": "t3"})
    running = prepare("capture", {"storeId": "s4", "shoppingTripId": "t4", "amount": usd})
    rt.jobs.enqueue([capture, refund, other, deferred, running], now=now)
    paused_until = now + PAUSED_FOR
    rt.jobs.defer(deferred.job_id, Deferral(DeferCause.PAUSED, paused_until, Operation.CANCEL, paused_until=paused_until), now)
    rt.jobs.begin(running.job_id, Operation.CAPTURE, "celery@w-test", now, "tag-1", 60.0)
    page = signed_in(console)

    page.goto("/console/jobs")
    assert listed(page) == [capture.job_id, other.job_id], "queued, oldest first; the running one is under its own tab"
    assert "a worker to take it from payments.capture" in page.locator(f"tr[data-id='{capture.job_id}']").inner_text()
    page.fill("input[name=store]", "s2")
    follow(page, "button:text('Filter')")
    assert listed(page) == [other.job_id]
    page.goto("/console/jobs?operation=cancel")
    assert listed(page) == []

    page.goto("/console/jobs")
    follow(page, "#tab-running")
    assert listed(page) == [running.job_id]
    assert "running on celery@w-test" in page.locator("#jobs").inner_text()
    follow(page, "#tab-deferred")
    assert listed(page) == [deferred.job_id]
    assert "cancel endpoint paused until" in page.locator("#jobs").inner_text()
    follow(page, "#tab-waiting")
    assert listed(page) == [refund.job_id]

    page.click(f"#jobs a:text('{capture.job_id}')")  # what the refund waits for
    assert page.url.endswith(f"/console/jobs/{capture.job_id}")
    assert page.locator("#state").inner_text() == "queued"
    page.goto(f"/console/jobs/{refund.job_id}")
    assert page.locator("#state").inner_text() == "waiting"
    assert page.locator("#waits").inner_text() == f"its trip's capture {capture.job_id} to succeed"
    page.goto(f"/console/jobs/{deferred.job_id}")
    assert "paused until" in page.locator("#deferrals").inner_text(), "the job's deferrals are its history"

    page.goto("/console/trips?store=s1&trip=t1")
    assert page.locator("#refundable").inner_text() == "0.00", "nothing is captured yet"
    assert "nothing is captured yet" in page.locator("#capture-pending").inner_text()
    page.click(f"#trip-jobs a:text('{refund.job_id}')")
    assert page.locator("h1").inner_text() == refund.job_id
    assert page.goto("/console/jobs/capture:nobody:nothing").status == 404


def test_an_operator_lifts_an_endpoint_s_pause_and_learned_pace_and_its_jobs_run_now(
    console: ServeProcess, signed_in: Callable[..., Page], settings: Settings, api: SandboxProcess,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    rt = Runtime.build(settings)
    now = time.time()
    paused_until = now + PAUSED_FOR
    rt.pacer.pause(Operation.CAPTURE, paused_until, now)
    rt.redis.hset(keys.pace(Operation.CAPTURE), mapping={"accepted": "4.5", "since": paused_until, "climb": 6000, "tat": paused_until})
    held = prepare("capture", {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "1.00", "code": "USD"}})
    elsewhere = prepare("cancel", {"storeId": "s2", "shoppingTripId": "t2"})  # another endpoint's job: left as it is
    rt.jobs.enqueue([held, elsewhere], now=now)
    for job, op in ((held, Operation.CAPTURE), (elsewhere, Operation.CANCEL)):
        rt.jobs.defer(job.job_id, Deferral(DeferCause.PAUSED, paused_until, op, paused_until=paused_until), now)
    rt.redis.hset(keys.job(held.job_id), "pace_turn", paused_until)  # the turn it held at the learned pace
    rt.redis.delete(*lanes.every_key(rt.redis, QUEUES))  # their first messages: deferred now, they wait in the deferred set only
    start_worker()
    page = signed_in(console)

    page.goto("/console/")
    assert page.locator("#endpoints tr:has-text('capture') .badge").inner_text().startswith("until")
    assert page.locator("#lift-cancel").count() == 0, "an endpoint neither paused nor paced has nothing to lift"
    page.click("#lift-capture")
    outcome = page.locator("#outcome").inner_text()
    assert outcome.startswith("capture: ended its pause") and "forgot its learned pace (4.5 calls/s" in outcome
    assert "1 deferred job made due now" in outcome
    assert rt.redis.exists(keys.pause(Operation.CAPTURE), keys.pace(Operation.CAPTURE)) == 0
    wait_for_state(rt.redis, held.job_id, "succeeded")
    assert [c["status"] for c in calls(api, Operation.CAPTURE)] == [200], "the held capture ran at once, not at the pause's end"
    assert rt.redis.zscore(keys.DEFERRED, elsewhere.job_id) == paused_until, "a job of another endpoint still waits"

    page.goto("/console/")
    assert "ops (payq console)" in page.locator("#endpoint-log").inner_text()
    assert page.locator("#lift-capture").count() == 0
    assert page.locator("#endpoints tr:has-text('capture') td").nth(1).inner_text() == "no"
