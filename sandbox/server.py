"""The sandbox's HTTP server: the four API endpoints on tornado, with rate limits, faults, latency and a request log.

A request goes through, in order: the request log, the SigV4 verifier (403),
the rate limiter (429 at once, no latency), the fault script, the latency,
then the ledger — or the fault instead.

Everything runs on one asyncio event loop: simulated latency and hangs are
``asyncio.sleep``, so a thousand slow requests cost no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from payapi.operations import API_OPERATIONS, Operation, api_path
from sandbox import admin
from sandbox.basehandler import ApiHandler, NotFoundHandler
from sandbox.faults import NO_FAULT, Fault, FaultScript, too_many_requests
from sandbox.ledger import Ledger
from sandbox.operations import Reply, decode, perform
from sandbox.ratelimit import RateLimits
from sandbox.receiver import Inbox
from sandbox.requestlog import LoggedRequest, RequestLog
from sandbox.state import SandboxState, Verifier

DEFAULT_LOG_LIMIT = 1_000_000
_MALFORMED_BODY = b"<<this is not JSON>> reconciliationId="
_TRUNCATED_STAND_IN = b'{"reconciliationId": "cutShortByTheSandbox"}'
_SHUTDOWN_GRACE_SECONDS = 2.0


class OperationHandler(ApiHandler):
    """``POST /v1/...``: one API operation; the rate limit, then the fault script, decide whether it is answered honestly."""

    def initialize(self, state: SandboxState, operation: Operation) -> None:  # type: ignore[override]
        self.state = state
        self.operation = operation
        self.entry: LoggedRequest | None = None

    async def post(self) -> None:
        """Log, verify, apply the rate limit, pick a fault, wait the latency, then answer (or not)."""
        state, request = self.state, self.request
        arrived = time.time()
        self.entry = state.log.record(arrived, "POST", request.path, request.headers, request.body)
        denied = state.verifier("POST", request.path, request.headers, request.body) if state.verifier else None
        # Like a gateway's throttle: after authentication (a 403 is not counted), before the service (no fault
        # consumed, no latency). The limiter gets the logged arrival time, so the log shows exactly what it counted.
        limit = state.limiter.admit(self.operation, arrived) if denied is None else None
        if limit is not None:
            self.entry.rate_limited = True
            await self._misbehave(too_many_requests(limit.retry_after), None)
            return
        decoded = decode(request.body)
        # A request the verifier refuses never reaches the service, so it consumes no fault.
        selection = NO_FAULT if denied is not None else state.faults.select(self.operation, decoded.store_id, decoded.trip_id)
        delay_ms = state.latency_ms + selection.latency_ms
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if denied is not None:
            self.send_reply(Reply(403, {"errorMsg": denied}))
            return
        fault = selection.fault
        reply = perform(state.ledger, self.operation, decoded) if fault is None or fault.process else None
        if fault is None or fault.kind == "pass":
            assert reply is not None
            self.send_reply(reply)
        else:
            await self._misbehave(fault, reply)

    def on_finish(self) -> None:
        if self.entry is not None:
            self.entry.status = self.get_status()

    async def _misbehave(self, fault: Fault, reply: Reply | None) -> None:
        if fault.kind == "status":
            self.set_status(fault.status)
            for name, value in fault.headers:
                self.set_header(name, value)
            self.finish(fault.body or None)  # tornado refuses even an empty chunk on a 204
        elif fault.kind == "extra":
            self.send_reply((reply or Reply(200)).with_extra_attributes())
        elif fault.kind == "malformed":
            self.set_header("Content-Type", "application/json")  # it claims to be JSON; it is not
            self.finish(_MALFORMED_BODY)
        elif fault.kind == "reset":
            _abort(self.detach())
        elif fault.kind == "hang":
            stream = self.detach()
            try:
                await asyncio.sleep(fault.seconds)
            finally:
                stream.close()
        elif fault.kind == "truncate":
            await self._truncate(reply)
        else:  # pragma: no cover - parse_fault admits no other kind
            raise AssertionError(f"unhandled fault kind {fault.kind}")

    async def _truncate(self, reply: Reply | None) -> None:
        # Half of what the Content-Length promises: the normal body when there is one, else a stand-in.
        full = reply.body() if reply is not None and reply.payload is not None else _TRUNCATED_STAND_IN
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(full)}\r\n\r\n".encode()
        if self.entry is not None:
            self.entry.status = 200  # a status line did go out
        stream = self.detach()
        try:
            await stream.write(head + full[: len(full) // 2])
        except StreamClosedError:
            pass
        finally:
            stream.close()


def _abort(stream: IOStream) -> None:
    """Close with a TCP RST instead of a FIN: linger on, timeout zero."""
    if not stream.closed():  # the client may have hung up first, during the latency
        with contextlib.suppress(OSError):
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.close()


def _quiet(handler: RequestHandler) -> None:
    """Tornado's access log costs more than a sandbox request; the request log is the record."""


def make_app(
    *,
    ledger: Ledger | None = None,
    faults: FaultScript | None = None,
    latency_ms: float = 0.0,
    auto_register: bool = False,
    log_limit: int = DEFAULT_LOG_LIMIT,
    verifier: Verifier | None = None,
    rate_limits: RateLimits | None = None,
    notify_secret: str | None = None,
    clock: Callable[[], float] = time.time,
    fault_clock: Callable[[], float] = time.monotonic,
) -> Application:
    """Build the sandbox app; its state is ``app.settings["sandbox_state"]`` (see :func:`state_of`).

    ``verifier`` checks each API request (method, path, headers, body) before
    anything else; a message it returns is answered 403 ``{"errorMsg": message}``.
    ``rate_limits`` are the configured limits per endpoint (``faults`` may
    replace them while it is in force; a reset brings them back).
    ``notify_secret`` (``whsec_…``) checks the signatures of the outcome
    notifications ``/admin/notifications`` receives.
    ``clock`` is the ledger's wall clock (trip times, the refund window).
    """
    state = SandboxState(
        ledger=ledger if ledger is not None else Ledger(clock=clock, auto_register=auto_register),
        log=RequestLog(log_limit),
        faults=faults if faults is not None else FaultScript([], clock=fault_clock),
        latency_ms=latency_ms,
        verifier=verifier,
        fault_clock=fault_clock,
        rate_limits=dict(rate_limits or {}),
        inbox=Inbox(notify_secret),
    )
    routes: list[Any] = [(api_path(op), OperationHandler, {"state": state, "operation": op}) for op in API_OPERATIONS]
    routes += admin.routes(state)
    return Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args={"state": state},
        log_function=_quiet,
        compress_response=False,
        sandbox_state=state,
    )


def state_of(app: Application) -> SandboxState:
    """The state behind an app built by :func:`make_app`."""
    state = app.settings["sandbox_state"]
    assert isinstance(state, SandboxState)
    return state


def listening_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 host in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(app: Application, host: str, port: int, stop: asyncio.Event, *, announce: Callable[[str], None] = print) -> None:
    """Serve ``app`` on host:port (0 picks a free port) until ``stop`` is set, then close every connection."""
    sockets = bind_sockets(port, address=host)
    server = HTTPServer(app, idle_connection_timeout=60, body_timeout=30)
    server.add_sockets(sockets)
    announce(f"sandbox listening on {listening_url(host, sockets[0].getsockname()[1])}")
    try:
        await stop.wait()
    finally:
        server.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.close_all_connections(), _SHUTDOWN_GRACE_SECONDS)


def run(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    latency_ms: float = 0.0,
    faults: FaultScript | None = None,
    auto_register: bool = False,
    log_limit: int = DEFAULT_LOG_LIMIT,
    verifier: Verifier | None = None,
    rate_limits: RateLimits | None = None,
    notify_secret: str | None = None,
) -> None:
    """Run the sandbox until SIGTERM or SIGINT; prints ``sandbox listening on http://H:P`` once bound."""
    def announce(line: str) -> None:
        print(line, flush=True)  # a supervisor waiting on stdout must see it now, not at exit

    async def main() -> None:
        app = make_app(
            latency_ms=latency_ms, faults=faults, auto_register=auto_register, log_limit=log_limit, verifier=verifier,
            rate_limits=rate_limits, notify_secret=notify_secret,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, host, port, stop, announce=announce)

    asyncio.run(main())
