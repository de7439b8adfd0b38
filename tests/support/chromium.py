"""Headless Chromium for the browser tests: the DOM of a page after its scripts ran."""

from __future__ import annotations

import shutil
import subprocess
import tempfile


def chromium_path() -> str | None:
    """The Chromium binary on PATH, or None (the browser tests skip then; CI installs it)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(url: str, *, budget_ms: int = 5000, timeout: float = 60.0) -> str:
    """The serialized DOM of ``url`` once ``budget_ms`` of virtual time has passed.

    Virtual time does not advance while network fetches are pending, so the
    XHRs a page's scripts start (Flower's task table) finish within the budget
    however slow the machine is. Basic-auth credentials may be in ``url``.
    """
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="payq-chromium-") as profile:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout
