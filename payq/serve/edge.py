"""What ``payq serve`` does to every request and answer before its routes see them: proxies' headers, and the headers every answer needs.

- ``X-Forwarded-Host``, ``-Proto`` and ``-For`` are believed only from the
  proxies in ``PAYQ_SERVE_FORWARDED_ALLOW_IPS`` (uvicorn's ``forwarded_allow_ips``
  convention: addresses or networks, comma-separated, ``*`` for any; unset:
  none). From any other peer they are dropped before a route reads them, so
  the console's Origin check never takes a client's word for the host it was
  addressed to. From a trusted proxy, uvicorn's own middleware sets the
  client's address and scheme from ``-For`` and ``-Proto``.
- Every ``/v1`` answer carries payment data: ``Cache-Control: no-store`` so no
  cache between keeps it, and every answer ``X-Content-Type-Options: nosniff``
  so no browser reads JSON as something else.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

FORWARDED = (b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-for")
_NO_STORE = (b"cache-control", b"no-store")
_NOSNIFF = (b"x-content-type-options", b"nosniff")


class ForwardedHeaders:
    """Believe the forwarded headers only from trusted proxies; drop them from every other peer."""

    def __init__(self, app: ASGIApp, trusted: str | None) -> None:
        self._app = app
        # uvicorn's middleware parses the list (and applies -For and -Proto); None: no peer is a proxy
        self._proxies = ProxyHeadersMiddleware(app, trusted_hosts=trusted) if trusted else None  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        peer = scope.get("client")
        if self._proxies is not None and peer is not None and peer[0] in self._proxies.trusted_hosts:
            await self._proxies(scope, receive, send)  # type: ignore[arg-type]
            return
        scope["headers"] = [(name, value) for name, value in scope["headers"] if name not in FORWARDED]
        await self._app(scope, receive, send)


class AnswerHeaders:
    """``X-Content-Type-Options: nosniff`` on every answer; ``Cache-Control: no-store`` on every ``/v1`` answer."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        wanted = [_NOSNIFF, _NO_STORE] if scope["path"].startswith("/v1/") or scope["path"] == "/v1" else [_NOSNIFF]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in wanted if header[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, send_with_headers)
