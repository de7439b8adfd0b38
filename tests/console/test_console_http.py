"""The console over plain HTTP: off without credentials, refusals, no secrets, escaping, and replays shared with the CLI."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest
import requests

from config.settings import Settings
from payapi.operations import Operation
from tasks.producer import Producer, prepare
from tasks.redis import keys
from tests.console.conftest import PASSWORD, USER, form_token
from tests.support.deadletters import Spec, seed
from tests.support.jobs import queued
from tests.support.payq_cli import Ran, invoke
from tests.support.ports import free_port
from tests.support.serve import ServeProcess
from workers.runtime import Runtime

AUTH = (USER, PASSWORD)
PATHS = ["/console", "/console/", "/console/dead-letters", "/console/dead-letters/cancel:s1:t1", "/console/dead-letters/replay-all",
         "/console/dead-letters/purge-all", "/console/jobs", "/console/jobs?state=deferred", "/console/trips", "/console/static/console.css"]


def token(serve: ServeProcess, path: str = "/console/dead-letters") -> str:
    """The CSRF token in the forms of ``path``."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', serve.request("GET", path, auth=AUTH).text)
    assert found is not None, f"{path} has no form"
    return found.group(1)


def test_the_console_answers_404_everywhere_while_no_credentials_are_configured(redis_url: str) -> None:
    with ServeProcess(redis_url) as serve:
        for path in PATHS:
            assert serve.request("GET", path).status_code == 404, path
            assert serve.request("GET", path, auth=AUTH).status_code == 404, path
        assert serve.request("POST", "/console/dead-letters/replay", auth=AUTH, data={"id": "x"}).status_code == 404
        assert serve.request("GET", "/healthz").status_code == 200


def test_every_page_asks_for_the_login_and_refuses_wrong_credentials(console: ServeProcess) -> None:
    for path in PATHS:
        for auth in (None, (USER, "nope"), ("nope", PASSWORD)):
            answer = console.request("GET", path, auth=auth)
            assert answer.status_code == 401, (path, auth)
            assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
            assert answer.headers["Content-Type"].startswith("text/html"), "a browser shows a page, not JSON"
            assert '<h1 id="refused" data-status="401">Sign in</h1>' in answer.text
            assert "signed in as" not in answer.text and answer.headers["Cache-Control"] == "no-store"
        # a dead letter that does not exist is a 404 page, once signed in
        assert console.request("GET", path, auth=AUTH).status_code == (404 if path == PATHS[3] else 200), path
    garbled = console.request("GET", "/console/", headers={"Authorization": "Basic !!not-base64"})
    assert garbled.status_code == 401


def test_a_post_from_another_site_is_refused_even_with_the_right_token(console: ServeProcess, op_settings: Settings) -> None:
    [entry] = seed(op_settings, [Spec(trip="x1")])
    csrf = token(console)
    form = {"id": entry.id, "csrf": csrf}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Referer": "http://evil.example/page"},
                    {"Origin": console.url.replace("127.0.0.1", "localhost")}):
        answer = console.request("POST", "/console/dead-letters/replay", auth=AUTH, data=form, headers=headers)
        assert answer.status_code == 403, headers
    assert Runtime.build(op_settings).dead_letters.get(entry.id) is not None

    answer = console.request("POST", "/console/dead-letters/replay", auth=AUTH, data=form, headers={"Origin": console.url})
    assert answer.status_code == 200 and "replayed 1 of 1" in answer.text


def test_the_pages_escape_what_they_show_and_hold_no_secret(start_console: Callable[..., ServeProcess], op_settings: Settings) -> None:
    token_hash = "ab" * 32
    console = start_console(PAYQ_NOTIFY_URL="http://notify.internal.example/hook", PAYQ_NOTIFY_SECRET="whsec_c2VjcmV0LXNpZ25pbmcta2V5",
                            PAYQ_INTAKE_TOKENS=f'{{"{token_hash}": ["s1"]}}')
    [entry] = seed(op_settings, [Spec(trip="e1", error_type="<script>alert(1)</script>")])
    pages = [console.request("GET", path, auth=AUTH) for path in
             ("/console/", "/console/dead-letters", f"/console/dead-letters/{entry.id}", "/console/dead-letters/replay-all",
              "/console/trips?store=s1&trip=e1")]
    pages += [console.request("GET", path, auth=AUTH) for path in (f"/console/jobs/{entry.id}", "/console/jobs?store=s1")]
    for page in pages:
        assert page.status_code == 200
        for secret in (PASSWORD, "whsec_", token_hash, op_settings.redis_url, "notify.internal"):
            assert secret not in page.text, f"{page.url} shows {secret}"
        assert "<script" not in page.text
        assert page.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[2].text


def test_the_list_pages_through_entries_newest_first(console: ServeProcess, op_settings: Settings) -> None:
    entries = seed(op_settings, [Spec(trip=f"p{i}", store="s1" if i % 2 else "s2", age=i) for i in range(120)])

    def ids(query: str) -> list[str]:
        return re.findall(r'<tr data-id="([^"]+)"', console.request("GET", f"/console/dead-letters{query}", auth=AUTH).text)

    newest_first = [e.id for e in entries]  # age grows with i
    assert ids("") == newest_first[:50]
    assert ids("?page=3") == newest_first[100:]
    odd = [e.id for e in entries if e.store_id == "s1"]
    assert ids("?store=s1") == odd[:50] and ids("?store=s1&page=2") == odd[50:]
    assert ids("?q=P11") == [e.id for e in entries if "p11" in e.trip_id]
    bad = console.request("GET", "/console/dead-letters?since=soon&reason=bogus", auth=AUTH)
    assert bad.status_code == 400
    assert "since: must be a duration" in bad.text and "reason: must be one of" in bad.text


def test_a_replay_from_the_console_and_one_from_the_cli_at_the_same_moment_replay_each_entry_once(
    console: ServeProcess, op_settings: Settings, redis_url: str,
) -> None:
    entries = seed(op_settings, [Spec(trip=f"r{i}") for i in range(2000)])
    confirmation = console.request("GET", "/console/dead-letters/replay-all", auth=AUTH).text
    as_of = re.search(r'name="as_of" value="([^"]+)"', confirmation)
    assert as_of is not None
    form = {"csrf": token(console), "as_of": as_of.group(1)}
    start = threading.Barrier(2)
    answers: dict[str, requests.Response | Ran] = {}

    def from_console() -> None:
        start.wait()
        answers["console"] = console.request("POST", "/console/dead-letters/replay-all", auth=AUTH, data=form, timeout=60)

    def from_cli() -> None:
        start.wait()
        answers["cli"] = invoke(redis_url, "dlq", "replay", "--all")

    threads = [threading.Thread(target=from_console), threading.Thread(target=from_cli)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    rt = Runtime.build(op_settings)
    published = [m["id"] for m in queued(rt.redis, "payments.cancel")]
    assert sorted(published) == sorted(e.id for e in entries), "every entry published exactly once"
    assert all(rt.redis.llen(keys.replays(e.id)) == 1 for e in entries)
    page = answers["console"]
    assert isinstance(page, requests.Response) and page.status_code == 200
    by_console = int(re.search(r"replayed (\d+) of 2000", page.text).group(1))  # type: ignore[union-attr]
    cli = answers["cli"]
    assert isinstance(cli, Ran) and cli.code == 0
    by_cli = sum(1 for line in cli.stdout.splitlines() if line.startswith("replayed "))
    assert by_console + by_cli == 2000
    assert rt.dead_letters.list() == []


def test_an_unreachable_redis_is_a_503_that_names_no_address() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with ServeProcess(dead, env={"PAYQ_CONSOLE_BASIC_AUTH": f"{USER}:{PASSWORD}", "PAYQ_REDIS_RETRY_SECONDS": "0.3"}) as serve:
        answer = serve.request("GET", "/console/dead-letters", auth=AUTH)
        assert answer.status_code == 503
        assert "Redis is unreachable" in answer.text and dead.split("//")[1] not in answer.text


@pytest.mark.parametrize("path", ["/console/dead-letters/replay", "/console/dead-letters/purge", "/console/dead-letters/replay-all",
                                  "/console/dead-letters/purge-all", "/console/endpoints/lift"])
def test_an_action_without_a_selection_or_a_confirmation_is_refused(console: ServeProcess, op_settings: Settings, path: str) -> None:
    [entry] = seed(op_settings, [Spec(trip="s1")])
    answer = console.request("POST", path, auth=AUTH, data={"csrf": form_token()})
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("text/html")
    assert Runtime.build(op_settings).dead_letters.get(entry.id) is not None, "nothing was done"


def test_an_action_s_address_opened_as_a_page_is_a_405_not_a_dead_letter_named_after_it(console: ServeProcess) -> None:
    for path in ("/console/dead-letters/replay?id=cancel:s1:t1", "/console/dead-letters/purge", "/console/endpoints/lift"):
        answer = console.request("GET", path, auth=AUTH)
        assert answer.status_code == 405, path
        assert "POST" in answer.headers["Allow"]
    page = console.request("GET", "/console/dead-letters/replay?id=cancel:s1:t1", auth=AUTH)
    assert "No dead letter" not in page.text and "Open the dead letter (cancel:s1:t1)" in page.text


def test_refusals_after_sign_in_are_html_pages_too(start_console: Callable[..., ServeProcess], op_settings: Settings) -> None:
    console = start_console(read_only=True)
    rt = Runtime.build(op_settings)
    rt.pacer.pause(Operation.CAPTURE, time.time() + 600, time.time())
    answer = console.request("POST", "/console/endpoints/lift", auth=AUTH, data={"operation": "capture", "csrf": form_token()},
                             headers={"Origin": console.url})
    assert answer.status_code == 403 and answer.headers["Content-Type"].startswith("text/html")
    assert "read-only" in answer.text and 'signed in as <strong id="user">ops</strong>' in answer.text
    assert rt.redis.exists(keys.pause(Operation.CAPTURE)) == 1, "the pause is not lifted"


def test_a_forged_x_forwarded_host_is_believed_only_from_a_trusted_proxy(
    start_console: Callable[..., ServeProcess], op_settings: Settings,
) -> None:
    [entry] = seed(op_settings, [Spec(trip="fw1")])
    forged = {"Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"}
    form = {"id": entry.id, "csrf": form_token()}

    by_default = start_console()
    answer = by_default.request("POST", "/console/dead-letters/replay", auth=AUTH, data=form, headers=forged)
    assert answer.status_code == 403 and "not sent from the console&#39;s own pages" in answer.text
    assert Runtime.build(op_settings).dead_letters.get(entry.id) is not None

    # the same headers from a proxy named in the setting are the proxy's word: the host it was addressed as
    behind_proxy = start_console(PAYQ_SERVE_FORWARDED_ALLOW_IPS="127.0.0.1")
    answer = behind_proxy.request("POST", "/console/dead-letters/replay", auth=AUTH, data=form, headers=forged)
    assert answer.status_code == 200 and "replayed 1 of 1" in answer.text


def test_a_capture_s_dead_letter_page_shows_its_idempotency_key(console: ServeProcess, op_settings: Settings) -> None:
    [entry] = seed(op_settings, [Spec(trip="k1", operation="capture")])

    page = console.request("GET", f"/console/dead-letters/{entry.id}", auth=AUTH).text

    key = re.search(r'<code id="idempotency-key">([^<]*)</code>', page)
    assert key is not None and key.group(1) == "storeId s1, shoppingTripId k1"


def test_the_overview_shows_each_store_s_open_jobs_and_share_of_the_calls(console: ServeProcess, op_settings: Settings) -> None:
    producer = Producer(op_settings)
    for store, trips in (("s-big", 3), ("s-small", 1)):
        producer.publish([prepare("capture", {"storeId": store, "shoppingTripId": f"t{i}", "amount": {"amount": "1.00", "code": "USD"}})
                          for i in range(trips)])
    rt = Runtime.build(op_settings)
    now = time.time()
    # what BEGIN counts as it lets each call go (the workers are not needed for the picture)
    rt.redis.hset(keys.store_calls(int(now // 10)), mapping={"capture:s-big": 3, "capture:s-small": 1})

    page = console.request("GET", "/console/", auth=AUTH).text
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td>\s*<td>([^<]*)</td></tr>", page)
    assert rows == [("s-big", "3", "capture 3 (75%)"), ("s-small", "1", "capture 1 (25%)")]
