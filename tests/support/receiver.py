"""A store backend's webhook receiver for the notification tests: a real HTTP server in a thread, answering as scripted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    """How to answer one delivery: a status, headers, and how long to hold the request first."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: float = 0.0


@dataclass(frozen=True)
class Received:
    """One delivery as it arrived: its headers (lower-cased names), raw body, arrival and answer times, the status given."""

    headers: dict[str, str]
    body: bytes
    arrived: float
    answered: float
    status: int

    def json(self) -> Any:
        """The body parsed."""
        return json.loads(self.body)


class Receiver:
    """Answers POSTs with ``script`` in order, then ``then`` forever; records every delivery once answered.

    :meth:`answer_for` puts an answer before both for a while (a receiver that throttles for a minute).
    """

    def __init__(self, script: list[Answer] | None = None, then: Answer | None = None) -> None:
        self.script = list(script or [])
        self.then = then or Answer()
        self.received: list[Received] = []
        self.arrivals = 0
        self._lock = threading.Lock()
        self._for: tuple[float, Answer] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.arrivals += 1
                    if receiver._for is not None and arrived < receiver._for[0]:
                        answer = receiver._for[1]
                    else:
                        answer = receiver.script.pop(0) if receiver.script else receiver.then
                if answer.hold:
                    time.sleep(answer.hold)  # a receiver that hangs: this thread is the receiver's, not payq's
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._lock:
                    receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body, arrived, time.time(),
                                                      answer.status))

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/payq"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def answer_for(self, seconds: float, answer: Answer) -> float:
        """Answer every delivery arriving in the next ``seconds`` with ``answer``, then as scripted; returns when that ends."""
        until = time.time() + seconds
        with self._lock:
            self._for = (until, answer)
        return until

    def delivered(self) -> list[Received]:
        """The deliveries answered with a 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def all(self) -> list[Received]:
        """Every delivery answered so far."""
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiving(script: list[Answer] | None = None, then: Answer | None = None) -> Iterator[Receiver]:
    """A :class:`Receiver` for the duration of a ``with`` block."""
    receiver = Receiver(script, then)
    try:
        yield receiver
    finally:
        receiver.close()
