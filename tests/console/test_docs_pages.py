"""``/docs`` and ``/redoc``: off by default, behind a login when on, and every HTML page payq serves loads nothing from another origin.

"Another origin" is read from the pages themselves: every ``src`` and
``href`` in the HTML, every request Chromium makes while showing them, and
every source the Content-Security-Policy allows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import requests
from playwright.sync_api import Page

from config.settings import Settings
from payq.serve.access import digest, new_token
from tests.console.conftest import FLOWER, PASSWORD, USER
from tests.support.deadletters import Spec, seed
from tests.support.serve import ServeProcess

TOKEN = new_token()
DOCS_ON = {"PAYQ_SERVE_DOCS": "true", "PAYQ_INTAKE_TOKENS": json.dumps({digest(TOKEN): ["s1"]})}
# what a CSP source may be without naming an origin: keywords, and data:/blob: (made in the page itself)
OWN_SOURCES = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}


def foreign_references(url: str, html: str, links_allowed: tuple[str, ...] = ()) -> list[str]:
    """Every ``src``/``href``/``action`` in ``html`` (served at ``url``) that points to an origin other than the page's.

    ``links_allowed``: origins a plain link (``<a href>``, opened by a click, never loaded) may name, such as Flower's.
    """
    own = urlsplit(url).netloc
    found = []
    for tag, ref in re.findall(r'<(\w+)[^>]*?\b(?:src|href|action|spec-url)="([^"]*)"', html):
        origin = urlsplit(urljoin(url, ref)).netloc
        if origin != own and not (tag == "a" and origin in links_allowed):
            found.append(ref)
    return found


def foreign_csp_sources(policy: str) -> list[str]:
    """Every source a Content-Security-Policy allows that names an origin (a host, a scheme such as https:, *)."""
    return [source for directive in policy.split(";") for source in directive.split()[1:] if source not in OWN_SOURCES]


def test_docs_pages_are_404_by_default_and_openapi_is_public_and_the_same_either_way(
    start_console: Callable[..., ServeProcess],
) -> None:
    off, on = start_console(), start_console(**DOCS_ON)

    for path in ("/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js", "/docs/oauth2-redirect"):
        assert off.request("GET", path).status_code == 404, path
        assert off.request("GET", path, auth=(USER, PASSWORD)).status_code == 404, path
    documents = [serve.request("GET", "/openapi.json") for serve in (off, on)]
    assert [d.status_code for d in documents] == [200, 200], "public: no login asked"
    assert documents[0].json() == documents[1].json()
    assert not [p for p in documents[1].json()["paths"] if p.startswith(("/docs", "/redoc", "/favicon"))]

    assert on.request("GET", "/docs").status_code == 401
    assert on.request("GET", "/docs").headers["WWW-Authenticate"].startswith('Basic realm="payq console"')
    assert on.request("GET", "/redoc", auth=(USER, "wrong")).status_code == 401
    assert on.request("GET", "/docs", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert on.request("GET", "/docs/assets/swagger-ui-bundle.js").status_code == 401
    assert on.request("GET", "/docs", auth=(USER, PASSWORD)).status_code == 200, "a console user"
    assert on.request("GET", "/redoc", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, "a store backend's token"
    assert on.request("GET", "/docs/assets/nothing.js", auth=(USER, PASSWORD)).status_code == 404


def test_the_docs_pages_render_in_chromium_from_payq_alone(
    start_console: Callable[..., ServeProcess], signed_in: Callable[..., Page],
) -> None:
    serve = start_console(**DOCS_ON)
    page = signed_in(serve)
    asked: list[str] = []
    refused: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)

    assert page.goto("/docs").status == 200
    page.wait_for_selector(".swagger-ui .info .title")
    assert "payq" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock-summary-path").count() >= 4, "the operations are listed"
    assert page.goto("/redoc").status == 200
    page.wait_for_selector("h1:has-text('payq')")

    own = urlsplit(serve.url).netloc
    assert [u for u in asked if urlsplit(u).netloc != own and not u.startswith(("data:", "blob:"))] == []
    assert refused == [], "nothing the pages need is refused by their policy"
    assert f"{serve.url}/openapi.json" in asked and f"{serve.url}/docs/assets/redoc.standalone.js" in asked


def test_every_html_page_references_no_origin_but_its_own(start_console: Callable[..., ServeProcess], op_settings: Settings) -> None:
    [entry] = seed(op_settings, [Spec(trip="o1")])
    serve = start_console(**DOCS_ON)
    auth = (USER, PASSWORD)
    pages = ["/docs", "/redoc", "/console/", "/console/dead-letters", f"/console/dead-letters/{entry.id}", "/console/jobs",
             f"/console/jobs/{entry.id}", "/console/workers", "/console/trips?store=s1&trip=o1", "/console/log",
             "/console/dead-letters/replay-all", "/console/dead-letters/cancel:nope"]
    answers = {path: serve.request("GET", path, auth=auth) for path in pages}
    answers["401 page"] = serve.request("GET", "/console/", auth=(USER, "wrong"))
    answers["405 page"] = serve.request("GET", "/console/dead-letters/replay", auth=auth)

    for name, answer in answers.items():
        assert answer.headers["Content-Type"].startswith("text/html"), name
        assert foreign_references(answer.url, answer.text, links_allowed=(urlsplit(FLOWER).netloc,)) == [], name
        policy = answer.headers["Content-Security-Policy"]
        assert foreign_csp_sources(policy) == [], (name, policy)
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy, name
    assert requests.get(serve.url + "/favicon.ico", timeout=10).headers["Content-Type"] == "image/svg+xml"


def test_the_check_sees_a_foreign_reference_and_a_foreign_policy_source() -> None:
    html = ('<script src="https://cdn.example/x.js"></script><link rel="icon" href="//fonts.example/f.css"><a href="/console/">in</a>'
            '<a class="x" href="http://flower.internal:5555/task/1">Flower</a><img alt="" src="http://flower.internal:5555/i.png">')
    assert foreign_references("http://127.0.0.1:8088/docs", html, links_allowed=("flower.internal:5555",)) == [
        "https://cdn.example/x.js", "//fonts.example/f.css", "http://flower.internal:5555/i.png"]
    assert foreign_csp_sources("default-src 'none'; script-src 'self' https://cdn.example; img-src * data:") == ["https://cdn.example", "*"]
