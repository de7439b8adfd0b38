"""The console in headless Chromium against a real stack: private Redis, the sandbox, a worker, ``payq serve``.

What an operator does: log in, find a dead letter in the list and by search,
replay it from its page (the sandbox receives the call), replay all that match
a filter, purge with a confirmation; and what the console refuses: actions in
read-only mode, a POST without its CSRF token, wrong credentials.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from playwright.sync_api import Page

from config.settings import Settings
from tasks.producer import Producer
from tests.console.conftest import FLOWER, PASSWORD, USER, follow, form_token
from tests.support.deadletters import Spec, seed
from tests.support.jobs import queued
from tests.support.polling import wait_for
from tests.support.sandbox import SandboxProcess
from tests.support.serve import ServeProcess
from tests.support.worker import WorkerProcess
from workers.runtime import Runtime

CANCEL_PATH = "/v1/cancel/charge"


def listed(page: Page) -> list[str]:
    """The job ids of the rows the dead-letter list shows."""
    return page.locator("#entries tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")


def test_an_operator_logs_in_finds_a_dead_letter_and_replays_it_from_its_page(
    console: ServeProcess, signed_in: Callable[..., Page], producer: Producer, api: SandboxProcess,
    start_worker: Callable[..., WorkerProcess], settings: Settings,
) -> None:
    start_worker()
    api.set_faults({"rules": [{"endpoint": "cancel", "sequence": ["400"]}]})  # the first call is refused, later ones succeed
    job_id = producer.enqueue_cancel(storeId="s-web", shoppingTripId="t-web")
    rt = Runtime.build(settings)
    wait_for(lambda: rt.dead_letters.get(job_id), what="the cancel to be dead-lettered")

    page = signed_in(console)
    assert page.goto("/console/").status == 200
    assert page.locator("#dead-letters").inner_text() == "1"
    assert page.locator("meta[http-equiv=refresh]").get_attribute("content") == "5", "the overview reloads itself"
    assert "signed in as ops" in page.locator("header").inner_text()

    follow(page, "text=Dead letters")
    assert listed(page) == [job_id]
    page.fill("input[name=q]", "t-web")
    follow(page, "button:text('Filter')")
    assert listed(page) == [job_id]
    page.fill("input[name=q]", job_id)
    follow(page, "button:text('Filter')")
    assert listed(page) == [job_id]
    page.fill("input[name=q]", "t-elsewhere")
    follow(page, "button:text('Filter')")
    assert listed(page) == []
    assert "No dead letters match" in page.locator("#summary").inner_text()

    page.goto("/console/dead-letters")
    page.click(f"#entries a:text('{job_id}')")
    assert page.locator("#status").inner_text() == "400"
    assert json.loads(page.locator("#kwargs").inner_text())["shoppingTripId"] == "t-web"
    assert page.locator("a:text('this job in Flower')").get_attribute("href") == f"{FLOWER}/task/{job_id}"

    page.click("#replay")
    assert page.locator("#outcome").inner_text().startswith("replayed 1 of 1")
    wait_for(lambda: (rt.jobs.get(job_id) or {}).get("state") == "succeeded", what="the replayed cancel to succeed")
    calls = api.requests(CANCEL_PATH)
    assert [c["status"] for c in calls] == [400, 200], "the sandbox received the replayed call"
    assert rt.dead_letters.get(job_id) is None

    assert page.goto(f"/console/dead-letters/{job_id}").status == 404
    assert "No dead letter" in page.locator("h1").inner_text()


def test_replay_all_matching_a_filter_replays_only_those(
    console: ServeProcess, signed_in: Callable[..., Page], op_settings: Settings, redis_url: str,
) -> None:
    matching = seed(op_settings, [Spec(trip=f"m{i}", store="s1", age=60 * i) for i in range(3)])
    others = seed(op_settings, [Spec(trip="o1", store="s2"), Spec(trip="o2", store="s1", reason="internal-error", status=None)])
    page = signed_in(console)

    page.goto("/console/dead-letters?store=s1&reason=permanent")
    assert sorted(listed(page)) == sorted(e.id for e in matching)
    page.click("#replay-all")
    assert page.locator("#count strong").inner_text() == "3"
    late = seed(op_settings, [Spec(trip="late", store="s1")])  # dead-lettered after the confirmation was shown: left alone
    page.click("#confirm")

    assert page.locator("#outcome").inner_text().startswith("replayed 3 of 3")
    rt = Runtime.build(op_settings)
    assert sorted(e.id for e in rt.dead_letters.list()) == sorted(e.id for e in [*others, *late])
    assert sorted(m["id"] for m in queued(rt.redis, "payments.cancel")) == sorted(e.id for e in matching)
    assert all(h["by"] == "ops (payq console)" for e in matching for h in map(json.loads, rt.redis.lrange(f"payq:job:{e.id}:replays", 0, -1)))

    page.goto("/console/")
    assert page.locator("#queued").inner_text() == "3"
    assert page.locator("#queues tr:has-text('payments.cancel') td.num").inner_text() == "3"
    assert page.locator("#reasons tr:has-text('permanent') td.num").inner_text() == "2"  # o1 and late


def test_purge_selected_asks_for_a_confirmation_first(
    console: ServeProcess, signed_in: Callable[..., Page], op_settings: Settings,
) -> None:
    first, second, kept = seed(op_settings, [Spec(trip="p1"), Spec(trip="p2"), Spec(trip="p3")])
    rt = Runtime.build(op_settings)
    page = signed_in(console)

    page.goto("/console/dead-letters")
    page.check(f"input[value='{first.id}']")
    page.check(f"input[value='{second.id}']")
    page.click("#purge-selected")
    assert page.locator("h1").inner_text() == "Purge 2 dead letters for good?"
    assert sorted(page.locator("#to-purge a.id").all_inner_texts()) == sorted([first.id, second.id])
    assert len(rt.dead_letters.list()) == 3, "nothing is purged before the confirmation"

    page.click("#confirm")
    assert page.locator("#outcome").inner_text().startswith("purged 2 dead letters")
    assert [e.id for e in rt.dead_letters.list()] == [kept.id]


def test_read_only_console_shows_no_action_and_refuses_a_forged_post(
    start_console: Callable[..., ServeProcess], signed_in: Callable[..., Page], op_settings: Settings, redis_url: str,
) -> None:
    [entry] = seed(op_settings, [Spec(trip="ro1")])
    console = start_console(read_only=True)
    page = signed_in(console)

    for path in ("/console/", "/console/dead-letters", f"/console/dead-letters/{entry.id}", "/console/dead-letters/replay-all",
                 "/console/trips?store=s1&trip=ro1"):
        assert page.goto(path).status == 200, path
        assert page.locator("form[method=post]").count() == 0, f"{path} offers an action"
        assert page.locator("input[name=csrf]").count() == 0
        assert page.locator("#read-only").is_visible()
    assert page.locator("#replay, #purge, #replay-selected, #purge-selected, #confirm").count() == 0

    # forged with everything a real form would carry, the right token included
    forged = page.request.post(console.url + "/console/dead-letters/replay", form={
        "id": entry.id, "csrf": form_token(),
    }, headers={"Origin": console.url})
    assert forged.status == 403
    assert "read-only" in forged.text()
    rt = Runtime.build(op_settings)
    assert rt.dead_letters.get(entry.id) is not None
    assert queued(rt.redis, "payments.cancel") == []


def test_a_post_without_its_csrf_token_is_refused(
    console: ServeProcess, signed_in: Callable[..., Page], op_settings: Settings,
) -> None:
    [entry] = seed(op_settings, [Spec(trip="c1")])
    page = signed_in(console)
    page.goto(f"/console/dead-letters/{entry.id}")
    page.locator("input[name=csrf]").evaluate_all("inputs => inputs.forEach(i => i.remove())")

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("#replay")
    assert answer.value.status == 403
    assert page.locator("h1").inner_text() == "Refused" and "CSRF" in page.locator("#problem").inner_text()

    wrong = page.request.post(console.url + "/console/dead-letters/replay", form={"id": entry.id, "csrf": "0" * 64})
    assert wrong.status == 403
    rt = Runtime.build(op_settings)
    assert rt.dead_letters.get(entry.id) is not None
    assert queued(rt.redis, "payments.cancel") == []


def test_wrong_credentials_are_refused(console: ServeProcess, signed_in: Callable[..., Page], op_settings: Settings) -> None:
    [entry] = seed(op_settings, [Spec(trip="w1")])
    for user, password in ((USER, "wrong"), ("someone", PASSWORD), (USER, PASSWORD + "x")):
        page = signed_in(console, user, password)
        answer = page.goto(f"/console/dead-letters/{entry.id}")
        assert answer is not None and answer.status == 401
        assert answer.headers["www-authenticate"].startswith("Basic realm=")
        assert page.locator("h1").inner_text() == "Sign in", "a page for the browser, not JSON"
        assert entry.id not in page.content()
    assert signed_in(console).goto(f"/console/dead-letters/{entry.id}").status == 200
