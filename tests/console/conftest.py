"""Fixtures for the console: a real ``payq serve`` with the console on, and a browser signed in to it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from config.settings import Settings
from payq.serve.console.users import Role, User, csrf_day, csrf_token
from tests.support.browser import chromium
from tests.support.chromium import chromium_path
from tests.support.serve import ServeProcess

USER, PASSWORD = "ops", "console-pass-7f3a"


def form_token(user: str = USER, password: str = PASSWORD) -> str:
    """Today's CSRF token of the PAYQ_CONSOLE_BASIC_AUTH user ``user:password``, as its pages carry it."""
    return csrf_token(User(user, Role.OPERATOR, password, hashed=False), csrf_day(time.time()))
FLOWER = "http://flower.internal:5555"


def follow(page: Page, selector: str) -> None:
    """Click what loads another page (a link, a GET form's button) and wait until that page has loaded.

    A bare click returns once the navigation has begun, so a read right after it can see the page
    before it (a table read with ``evaluate_all``, which does not wait, then found no rows).
    """
    with page.expect_navigation():
        page.click(selector)


@pytest.fixture
def start_console(redis_url: str) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``payq serve`` with the console on (``read_only=True`` for a read-only one); stopped after the test."""
    started: list[ServeProcess] = []

    def start(*, read_only: bool = False, **env: str) -> ServeProcess:
        serve = ServeProcess(redis_url, env={
            "PAYQ_CONSOLE_BASIC_AUTH": f"{USER}:{PASSWORD}", "PAYQ_CONSOLE_READ_ONLY": str(read_only).lower(),
            "PAYQ_FLOWER_URL": FLOWER, "PAYQ_REDIS_RETRY_SECONDS": "0.5", **env,
        })
        started.append(serve)
        return serve

    yield start
    for serve in started:
        serve.stop()


@pytest.fixture
def console(start_console: Callable[..., ServeProcess]) -> ServeProcess:
    """``payq serve`` with the console on, actions allowed."""
    return start_console()


@pytest.fixture
def op_settings(redis_url: str) -> Settings:
    """Settings on the private, flushed Redis, for seeding dead letters and reading the stores."""
    return Settings(redis_url=redis_url, redis_retry_seconds=0.5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test process (each test gets its own context: no shared cookies or logins)."""
    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; CI installs it)")
    with chromium() as found:
        yield found


@pytest.fixture
def signed_in(browser: Browser) -> Iterator[Callable[[ServeProcess], Page]]:
    """``signed_in(console)``: a page whose browser sends the operators' basic-auth credentials to that console."""
    contexts: list[BrowserContext] = []

    def open_page(serve: ServeProcess, username: str = USER, password: str = PASSWORD) -> Page:
        context = browser.new_context(base_url=serve.url, http_credentials={"username": username, "password": password})
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
