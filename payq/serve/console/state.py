"""What every console request shares: the stores (the CLI's own), the templates, and how a page is sent.

The console is sync on purpose: its routes are plain ``def`` functions, which
FastAPI runs in its thread pool, so they call the very store methods the
``payq`` CLI calls (``DeadLetterStore.replay_entries``, ``purge``, ...) with a
sync Redis client and never block the event loop the intake runs on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import jinja2
import redis
from fastapi import Request
from fastapi.responses import HTMLResponse

from config.settings import Settings
from payapi.errors import BrokerUnavailable
from payq.durations import age
from payq.serve.console.users import Users
from payq.views import idempotency_key, subject_of
from tasks.redis.connection import with_retry
from tasks.redis.memory import warning_from
from tasks.redis.replicas import Sighting
from tasks.stores import Stores

T = TypeVar("T")

# Every page: no caching (pages hold job data and the CSRF token), no framing (clickjacking on the
# action buttons), no scripts at all, styles and forms only from the console itself.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_lock = threading.Lock()


class Refusal(Exception):
    """A console request answered with an HTML page, not done: 400 (not a confirmation), 401 (login), 403 (read-only, CSRF, Origin), 405, 503.

    Raised instead of FastAPI's ``HTTPException``, whose JSON body is for API
    clients: an operator's browser shows this page, and a 401 keeps its
    ``WWW-Authenticate`` challenge in ``headers``.
    """

    def __init__(self, status: int, title: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers or {}


@dataclass
class Console:
    """The console of one ``payq serve`` process: its settings, the CLI's :class:`Stores` and the templates."""

    settings: Settings
    stores: Stores
    templates: jinja2.Environment
    stylesheet: bytes
    users: Users

    @classmethod
    def build(cls, settings: Settings) -> Console:
        """Wire the console for ``settings``; Redis is connected on first use."""
        env = jinja2.Environment(
            loader=jinja2.PackageLoader("payq.serve.console", "templates"),
            autoescape=True,  # every value shown is escaped: kwargs and error messages come from outside
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        )
        env.filters.update(when=when, ago=ago, query=query_string, quoted=lambda value: quote(str(value), safe=":"), subject=subject_of,
                           idempotency_key=idempotency_key)
        stylesheet = resources.files("payq.serve.console").joinpath("static/console.css").read_bytes()
        return cls(settings, Stores.build(settings), env, stylesheet, Users.from_settings(settings))

    def redis(self, action: Callable[[], T]) -> T:
        """Run Redis reads or writes with the CLI's short retry; unreachable → 503 (the cause is logged, not shown)."""
        try:
            return with_retry(self.settings, action)
        except BrokerUnavailable:
            raise Refusal(503, "Redis is unreachable", "Redis is unreachable: see payq serve's log, and retry") from None

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """``template`` rendered with ``context`` and what every page shows (who is signed in, whether they may act, Flower, a degraded Redis)."""
        who = getattr(request.state, "operator", None)
        page = self.templates.get_template(template).render(
            operator=who, read_only=who is None or not who.may_act, process_read_only=self.settings.console_read_only,
            flower_url=self.settings.flower_url, now=time.time(), path=request.url.path, replicas=self.replicas(),
            memory_warning=self.memory_warning(), **context,
        )
        return HTMLResponse(page, status, headers=SECURITY_HEADERS)

    def replicas(self) -> Sighting | None:
        """Redis's replicas as payq's writes see them (read at most once a second), for the banner; None if Redis does not answer."""
        try:
            return self.stores.replicas.look(self.stores.redis)
        except redis.RedisError:
            return None

    def memory_warning(self) -> str | None:
        """Whether Redis is near its maxmemory, for the banner (tasks/redis/memory.py); None if it is not, or does not answer."""
        try:
            return warning_from(self.stores.redis.info("memory"))
        except redis.RedisError:
            return None

    def refused(self, request: Request, refusal: Refusal) -> HTMLResponse:
        """The page for ``refusal``, with its status and headers (a 401's challenge)."""
        response = self.render(request, "refused.html", refusal.status, refusal=refusal)
        response.headers.update(refusal.headers)
        return response


def console_of(request: Request) -> Console:
    """The application's console, built on its first request (and only if the console is on)."""
    console: Console | None = getattr(request.app.state, "console", None)
    if console is None:
        with _lock:
            console = getattr(request.app.state, "console", None)
            if console is None:
                console = Console.build(request.app.state.settings)
                request.app.state.console = console
    return console


def refusal_page(request: Request, exc: Exception) -> HTMLResponse:
    """The application's handler for :class:`Refusal`: an HTML page, as the rest of the console."""
    assert isinstance(exc, Refusal)  # registered for Refusal only
    return console_of(request).refused(request, exc)


def when(epoch: float | None) -> str:
    """``epoch`` as ``2026-11-27 13:00:00 UTC``, or ``-``."""
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(epoch: float | None, now: float | None = None) -> str:
    """How long ago ``epoch`` was (:func:`payq.durations.age`), by the clock unless ``now`` is given."""
    return age(epoch, time.time() if now is None else now)


def query_string(params: dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from ``params`` with ``changes`` applied (a None value drops the name); empty when nothing is left."""
    merged = {k: v for k, v in {**params, **changes}.items() if v is not None and v != ""}
    return "?" + urlencode(merged) if merged else ""
