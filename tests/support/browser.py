"""Headless Chromium driven by Playwright, for the tests that click: Debian's chromium, never a browser Playwright downloads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

from tests.support.chromium import chromium_path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@contextmanager
def chromium() -> Iterator[Browser]:
    """The system's chromium under Playwright (``executable_path``: ``playwright install`` is never needed)."""
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
