"""A lean webhook receiver for scenario 8: records each delivery's raw headers and body, checks nothing while payments drain.

A store's receiver runs on a machine of its own; here it shares the two cores
with payq, so its CPU per request would count against payq's drain. This one is
an asyncio HTTP/1.1 keep-alive server that answers every ``POST`` with a 204 at
once and keeps ``(arrival time, raw head, raw body)``; the signatures are
checked after the drain (:func:`verified`), each delivery with the sandbox
receiver's own code (:class:`sandbox.receiver.Inbox`: Standard Webhooks'
``Webhook.verify``), so the scenario still proves every notification arrived
once and signed right. ``GET /admin/deliveries`` lists what arrived (JSON),
``POST /admin/reset`` forgets it, ``GET /admin/health`` answers 200.

Run as ``python -m benchmarks.receiver --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from benchmarks.processes import Managed, admin_session, free_port
from sandbox.receiver import Inbox

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


class _Connection(asyncio.Protocol):
    """One kept-alive connection: requests parsed as they come (Content-Length bodies only), answered in order."""

    def __init__(self, kept: list[tuple[float, bytes, bytes]]) -> None:
        self._kept = kept
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            length = _content_length(head)
            if len(buffer) < end + 4 + length:
                return
            body = bytes(buffer[end + 4:end + 4 + length])
            del buffer[:end + 4 + length]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self._transport is not None
        line = head.split(b"\r\n", 1)[0]
        if line.startswith(b"POST /admin/reset "):
            self._kept.clear()
            self._transport.write(_NO_CONTENT)
        elif line.startswith(b"GET /admin/"):
            payload = b"{}"
            if line.startswith(b"GET /admin/deliveries "):
                payload = json.dumps([[at, h.decode("latin-1"), b.decode("utf-8", "replace")] for at, h, b in self._kept]).encode()
            self._transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
                                  + payload)
        else:
            self._kept.append((time.time(), head, body))
            self._transport.write(_NO_CONTENT)


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    stop = lowered.find(b"\r\n", at + 17)
    return int(lowered[at + 17:stop if stop >= 0 else len(lowered)])


def headers_of(head: str) -> dict[str, str]:
    """The header fields of a raw request head (its request line dropped), names lower-cased."""
    fields: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return fields


def verified(raw: list[list[Any]], secret: str) -> list[dict[str, Any]]:
    """The deliveries of ``GET /admin/deliveries``, each checked as the sandbox's receiver checks one, as its ``/admin/notifications`` lists them."""
    inbox = Inbox(secret)
    for at, head, body in raw:
        inbox.receive(headers_of(head), body.encode("utf-8"), now=at)
    return [d.to_json() for d in inbox.deliveries]


class ReceiverProc(Managed):
    """``python -m benchmarks.receiver`` on a free port, ready once ``/admin/health`` answers; ``secret`` checks its deliveries."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__("receiver", [sys.executable, "-m", "benchmarks.receiver", "--port", str(self.port)])
        self.session = admin_session(self, self.url, "receiver")

    def reset(self) -> None:
        """Forget every delivery."""
        self.session.post(self.url + "/admin/reset", timeout=30).raise_for_status()

    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery so far, verified (:func:`verified`)."""
        answer = self.session.get(self.url + "/admin/deliveries", timeout=120)
        answer.raise_for_status()
        return verified(answer.json(), self.secret)

    def stop(self, sig: int = 15, timeout: float = 15.0) -> None:
        """Stop the receiver and close the admin session."""
        self.session.close()
        super().stop(sig, timeout)


async def _serve(host: str, port: int) -> None:
    kept: list[tuple[float, bytes, bytes]] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(kept), host, port, backlog=256)
    async with server:
        await server.serve_forever()


def main() -> None:
    """``python -m benchmarks.receiver --port N``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
