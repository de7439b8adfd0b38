"""Console users with roles, in Chromium: a viewer reads and is refused every action, an operator acts, and the action log names each.

The users are made as an operator makes them: ``payq console user NAME
--role R`` (bcrypt at its default cost) into ``PAYQ_CONSOLE_USERS``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable

from playwright.sync_api import Page

from config.settings import Settings
from payapi.operations import Operation
from tasks.redis import keys
from tests.console.conftest import form_token
from tests.support.deadletters import Spec, seed
from tests.support.jobs import queued
from tests.support.payq_cli import PAYQ
from tests.support.serve import ServeProcess
from workers.runtime import Runtime

VIEWER, VIEWER_PASSWORD = "vera", "viewer-pass-91c2"
OPERATOR, OPERATOR_PASSWORD = "otto", "operator-pass-4d7e"


def console_user(name: str, role: str, password: str) -> dict[str, dict[str, str]]:
    """The PAYQ_CONSOLE_USERS entry ``payq console user`` prints."""
    made = subprocess.run([str(PAYQ), "console", "user", name, "--role", role, "--password-stdin"], input=password + "\n",
                          capture_output=True, text=True, timeout=60, check=True)
    entry: dict[str, dict[str, str]] = json.loads(made.stdout)
    return entry


def test_a_viewer_reads_but_cannot_act_an_operator_acts_and_the_action_log_names_each(
    start_console: Callable[..., ServeProcess], signed_in: Callable[..., Page], op_settings: Settings,
) -> None:
    users = {**console_user(VIEWER, "viewer", VIEWER_PASSWORD), **console_user(OPERATOR, "operator", OPERATOR_PASSWORD)}
    assert users[OPERATOR]["hash"].startswith("$2b$12$") and OPERATOR_PASSWORD not in json.dumps(users)
    [first, second] = seed(op_settings, [Spec(trip="u1"), Spec(trip="u2")])
    rt = Runtime.build(op_settings)
    rt.pacer.pause(Operation.CAPTURE, time.time() + 600, time.time())
    # the basic-auth user of before stays on beside them, as one more operator
    console = start_console(PAYQ_CONSOLE_USERS=json.dumps(users))

    viewer = signed_in(console, VIEWER, VIEWER_PASSWORD)
    for path in ("/console/", "/console/dead-letters", f"/console/dead-letters/{first.id}", "/console/dead-letters/replay-all",
                 "/console/jobs", "/console/trips?store=s1&trip=u1", "/console/log"):
        assert viewer.goto(path).status == 200, path
        assert viewer.locator("form[method=post]").count() == 0, f"{path} offers a viewer an action"
    assert (viewer.locator("#user").inner_text(), viewer.locator("#role").inner_text()) == (VIEWER, "viewer")
    assert viewer.locator("#read-only").count() == 0, "the process is not read-only: the role is the viewer's own"
    # the viewer forges the operator's form with their own, valid, token: refused for the role, and logged
    viewer.goto(f"/console/dead-letters/{first.id}")
    assert viewer.locator("input[name=csrf]").count() == 0, "a viewer's pages carry no token at all"
    forged = viewer.request.post(console.url + "/console/dead-letters/replay", form={"id": first.id, "csrf": "0" * 64},
                                 headers={"Origin": console.url})
    assert forged.status == 403 and f"{VIEWER} is a viewer" in forged.text()
    lift = viewer.request.post(console.url + "/console/endpoints/lift", form={"operation": "capture", "csrf": "0" * 64},
                               headers={"Origin": console.url})
    assert lift.status == 403
    assert rt.dead_letters.get(first.id) is not None and queued(rt.redis, "payments.cancel") == []
    assert rt.redis.exists(keys.pause(Operation.CAPTURE)) == 1

    operator = signed_in(console, OPERATOR, OPERATOR_PASSWORD)
    operator.goto(f"/console/dead-letters/{first.id}")
    assert (operator.locator("#user").inner_text(), operator.locator("#role").inner_text()) == (OPERATOR, "operator")
    operator.click("#replay")
    assert operator.locator("#outcome").inner_text().startswith("replayed 1 of 1")
    operator.goto(f"/console/dead-letters/{second.id}")
    operator.click("#purge")
    operator.click("#confirm")
    operator.goto("/console/")
    operator.click("#lift-capture")
    assert rt.dead_letters.get(first.id) is None and rt.dead_letters.get(second.id) is None
    assert rt.redis.exists(keys.pause(Operation.CAPTURE)) == 0
    history = rt.redis.lrange(keys.replays(first.id), 0, -1)
    assert [json.loads(h)["by"] for h in history] == [f"{OPERATOR} (payq console)"], "the replay is recorded under the user's name"

    # the old single login is one more operator, and its forms still carry a token of its own
    assert form_token() != form_token(OPERATOR, OPERATOR_PASSWORD)

    viewer.goto("/console/log")
    rows = viewer.locator("#action-log tbody tr")
    entries = [(rows.nth(i).get_attribute("data-user"), rows.nth(i).locator(".action").inner_text()) for i in range(rows.count())]
    assert entries == [(OPERATOR, "lift capture"), (OPERATOR, "purge"), (OPERATOR, "replay"),
                       (VIEWER, "refused POST /console/endpoints/lift"), (VIEWER, "refused POST /console/dead-letters/replay")]
    text = viewer.locator("#action-log").inner_text()
    assert first.id in text and second.id in text
    assert re.search(rf"{OPERATOR}\s+operator\s+replay\s+replayed 1 of 1: {re.escape(first.id)}", text), text
    assert VIEWER_PASSWORD not in viewer.content() and users[VIEWER]["hash"] not in viewer.content()


def test_read_only_makes_every_user_a_viewer_on_this_process(
    start_console: Callable[..., ServeProcess], signed_in: Callable[..., Page], op_settings: Settings,
) -> None:
    [entry] = seed(op_settings, [Spec(trip="ro")])
    console = start_console(read_only=True, PAYQ_CONSOLE_USERS=json.dumps(console_user(OPERATOR, "operator", OPERATOR_PASSWORD)))

    page = signed_in(console, OPERATOR, OPERATOR_PASSWORD)
    page.goto(f"/console/dead-letters/{entry.id}")
    assert page.locator("#role").inner_text() == "viewer" and page.locator("#read-only").is_visible()
    assert page.locator("#replay").count() == 0
    refused = page.request.post(console.url + "/console/dead-letters/replay", form={"id": entry.id}, headers={"Origin": console.url})
    assert refused.status == 403 and "PAYQ_CONSOLE_READ_ONLY" in refused.text()
    assert Runtime.build(op_settings).dead_letters.get(entry.id) is not None
