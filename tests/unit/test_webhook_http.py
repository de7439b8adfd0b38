"""``tasks.notify.connection.Connection`` against a real local TCP server (TLS too) answering scripted raw bytes.

Each test starts a :class:`ScriptedServer`: one thread, one listening socket
on a port the kernel picks, answering each request it reads with the next
:class:`Reply` of the test's script, as raw bytes (in one write, or in writes
of a few bytes each), and recording every request as it arrived. No mocks:
the client under test talks TCP to it over loopback. Nothing sleeps to wait:
the tests wait on events and joins, each with a timeout.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from payapi.outcomes import Success, Transient
from tasks.notify.client import WebhookClient
from tasks.notify.connection import MAX_BODY, MAX_HEAD, Connection

WAIT = 5.0  # the longest any test waits for the server's thread; none should come near it
PATH = "/hooks/payq?store=s1"
BODY = b'{"type": "capture.succeeded", "note": "caf\xc3\xa9 \\r\\n\\r\\n"}'
SECRET = "whsec_" + base64.b64encode(b"payq-test-secret-of-thirty-two!!").decode()
TLS = Path(__file__).resolve().parents[1] / "support" / "tls"  # a test CA, and a certificate it signed for 127.0.0.1 (till 2126)


@dataclass(frozen=True)
class Reply:
    """How the server answers one request: raw bytes, written ``step`` bytes at a time (all at once if 0); then maybe close."""

    data: bytes = b""
    step: int = 0
    close: bool = False     # close the connection once the answer is written
    silent: bool = False    # never answer: hold the connection open until the test ends


@dataclass(frozen=True)
class Received:
    """One request as the server read it: which accepted connection it came on, its head's lines, its body."""

    connection: int
    lines: list[str]
    body: bytes

    def fields(self, name: str) -> list[str]:
        """Every value of the header field ``name`` (any case), stripped."""
        found = []
        for line in self.lines[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                found.append(value.strip())
        return found


@dataclass
class ScriptedServer:
    """A one-thread TCP server: reads HTTP/1.1 requests (by Content-Length), answers each with the script's next reply."""

    script: list[Reply]
    tls: ssl.SSLContext | None = None  # serve TLS with this context
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    closed: threading.Event = field(default_factory=threading.Event)  # set each time the server closes a connection itself

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))  # port 0: the kernel's choice, no race with other tests
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="scripted-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):  # wake the blocking accept; the loop sees the stop and ends
            socket.create_connection(("127.0.0.1", self.port), timeout=WAIT).close()
        self._thread.join(WAIT)
        self._listener.close()
        assert not self._thread.is_alive(), "the scripted server did not stop"

    def _serve(self) -> None:
        while True:
            sock, _ = self._listener.accept()
            if self._stop.is_set():
                sock.close()
                return
            index, self.accepted = self.accepted, self.accepted + 1
            with sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # the client gave up on the connection (an answer too long for it, say), or refused the TLS certificate
                with contextlib.suppress(OSError):
                    self._converse(self.tls.wrap_socket(sock, server_side=True) if self.tls else sock, index)

    def _converse(self, sock: socket.socket, index: int) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = sock.recv(65536)
                if not data:
                    return  # the client closed the connection
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            request = Received(index, lines, b"")
            size = int((request.fields("content-length") or ["0"])[0])
            while len(buffer) < size:
                data = sock.recv(65536)
                if not data:
                    return
                buffer += data
            body, buffer = buffer[:size], buffer[size:]
            self.received.append(Received(index, lines, body))
            if not self.script:
                return  # a request the test did not expect: closing makes it fail visibly
            reply = self.script.pop(0)
            if reply.silent:
                self._stop.wait(WAIT)
                return
            step = reply.step or len(reply.data) or 1
            for start in range(0, len(reply.data), step):
                sock.sendall(reply.data[start:start + step])
            if reply.close:
                sock.close()
                self.closed.set()
                return


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    """Start a scripted server (one per test); stopped, and its thread joined, after the test."""
    servers: list[ScriptedServer] = []

    def start(*script: Reply, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        server = ScriptedServer(list(script), tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def connect() -> Iterator[Callable[..., Connection]]:
    """Open a ``Connection`` to a scripted server; every one is closed after the test (before its server stops)."""
    opened: list[Connection] = []

    def open_(server: ScriptedServer, read_timeout: float = WAIT) -> Connection:
        conn = Connection("127.0.0.1", server.port, None, WAIT, read_timeout)
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        conn.close()


def request(port: int, body: bytes = BODY, path: str = PATH) -> bytes:
    """A delivery's request as :class:`tasks.notify.client.WebhookClient` builds it: head and body in one piece."""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"User-Agent: payq-notify\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def assert_one_post(received: Received, port: int, body: bytes = BODY, path: str = PATH) -> None:
    """The server read one POST of ``body`` to ``path``, for this host, with a Content-Length that matches."""
    assert received.lines[0] == f"POST {path} HTTP/1.1"
    assert not any(line.startswith(("POST ", "HTTP/")) for line in received.lines[1:])
    assert received.fields("host") == [f"127.0.0.1:{port}"]
    assert received.fields("content-length") == [str(len(body))]
    assert received.body == body


def answer(status: str = "200 OK", *fields: str, body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    """An answer's raw bytes: status line, the fields as given, the blank line, the body as given."""
    return f"{version} {status}\r\n".encode() + "".join(f"{f}\r\n" for f in fields).encode() + b"\r\n" + body


CHUNKED = answer("200 OK", "Transfer-Encoding: chunked",
                 body=b"5\r\nhello\r\n1;name=value\r\n,\r\n6;ext=\"q\"\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\nX-Other: o\r\n\r\n")

# the answer's raw bytes, whether the server closes after writing it; the status, some of the fields, the body, and `closed` expected
ANSWERS = [
    pytest.param(answer("200 OK", "Content-Length: 11", body=b"hello world"), False,
                 200, {"content-length": "11"}, b"hello world", False, id="200-content-length"),
    pytest.param(answer("200 OK", "Content-Length: 0"), False, 200, {"content-length": "0"}, b"", False, id="200-empty"),
    pytest.param(answer("204 No Content", "Date: Mon, 01 Jan 2024 00:00:00 GMT"), False,
                 204, {"date": "Mon, 01 Jan 2024 00:00:00 GMT"}, b"", False, id="204-no-body"),
    pytest.param(answer("200 OK", "Content-Length: 2", body=b"ok", version="HTTP/1.0"), True,
                 200, {"content-length": "2"}, b"ok", True, id="http-1.0-content-length-closes"),
    pytest.param(answer("200 OK", "Content-Length: 2", "Connection: Keep-Alive", body=b"ok", version="HTTP/1.0"), False,
                 200, {"connection": "Keep-Alive"}, b"ok", False, id="http-1.0-keep-alive-stays-open"),
    pytest.param(answer("201 Created", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"), False,
                 201, {"transfer-encoding": "chunked"}, b"", False, id="chunked-empty"),
    pytest.param(CHUNKED, False, 200, {"transfer-encoding": "chunked"}, b"hello, world0123456789", False,
                 id="chunked-extensions-trailers"),
    pytest.param(answer("200 OK", "Transfer-Encoding: gzip, Chunked", body=b"2\r\nok\r\n0\r\n\r\n"), False,
                 200, {"transfer-encoding": "gzip, Chunked"}, b"ok", False, id="chunked-last-coding-any-case"),
    pytest.param(answer("100 Continue") + answer("200 OK", "Content-Length: 2", body=b"ok"), False,
                 200, {"content-length": "2"}, b"ok", False, id="100-continue-first"),
    pytest.param(answer("103 Early Hints", "Link: </style.css>; rel=preload")
                 + answer("100 Continue") + answer("202 Accepted", "Content-Length: 2", body=b"ok"), False,
                 202, {"content-length": "2"}, b"ok", False, id="103-and-100-first"),
    pytest.param(answer("200 OK", "CoNtEnT-LeNgTh: 2", "X-Request-ID: abc", "x-request-id: def", "X-Spaced:   v  ", "X-Empty:",
                        body=b"ok"), False,
                 200, {"content-length": "2", "x-request-id": "abc, def", "x-spaced": "v", "x-empty": ""}, b"ok", False,
                 id="names-lower-cased-repeats-joined"),
    pytest.param(answer("429 Too Many Requests", "Retry-After: 120", "Content-Length: 0"), False,
                 429, {"retry-after": "120"}, b"", False, id="retry-after-seconds"),
    pytest.param(answer("503 Service Unavailable", "RETRY-AFTER: Wed, 21 Oct 2015 07:28:00 GMT", "Content-Length: 0"), False,
                 503, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"", False, id="retry-after-date"),
    pytest.param(answer("200 OK", "Content-Length: 2", "Connection: close", body=b"ok"), True,
                 200, {"connection": "close"}, b"ok", True, id="connection-close"),
    pytest.param(answer("200 OK", "Content-Length: 2", "Connection: Upgrade, Close", body=b"ok"), True,
                 200, {}, b"ok", True, id="connection-close-among-tokens"),
    pytest.param(answer("200", "Content-Length: 2", body=b"ok"), False, 200, {}, b"ok", False, id="status-without-reason"),
]


@pytest.mark.parametrize("step", [0, 1], ids=["one-write", "byte-by-byte"])
@pytest.mark.parametrize(("data", "server_closes", "status", "fields", "body", "closed"), ANSWERS)
def test_an_answer_is_parsed(serve: Callable[..., ScriptedServer], connect: Callable[..., Connection], step: int,
                             data: bytes, server_closes: bool, status: int, fields: dict[str, str], body: bytes, closed: bool) -> None:
    server = serve(Reply(data, step=step, close=server_closes))
    conn = connect(server)

    got_status, got_fields, got_body = conn.post(request(server.port))

    assert (got_status, got_body) == (status, body)
    assert got_fields.items() >= fields.items()
    assert all(name == name.lower() for name in got_fields)
    assert "link" not in got_fields  # an interim answer's fields are not the final answer's
    assert conn.closed is closed
    [received] = server.received
    assert_one_post(received, server.port)


@pytest.mark.parametrize("step", [0, 1], ids=["one-write", "byte-by-byte"])
@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_a_body_without_length_is_read_until_the_server_closes(serve: Callable[..., ScriptedServer], connect: Callable[..., Connection],
                                                                step: int, version: str) -> None:
    server = serve(Reply(answer("200 OK", "Content-Type: text/plain", body=b"all of it\r\n\r\nuntil close", version=version),
                         step=step, close=True))
    conn = connect(server)

    assert conn.post(request(server.port)) == (200, {"content-type": "text/plain"}, b"all of it\r\n\r\nuntil close")
    assert conn.closed
    assert_one_post(server.received[0], server.port)


def test_two_requests_share_one_kept_alive_connection(serve: Callable[..., ScriptedServer], connect: Callable[..., Connection]) -> None:
    server = serve(Reply(answer("200 OK", "Content-Length: 5", body=b"first")),
                   Reply(answer("200 OK", "Transfer-Encoding: chunked", body=b"6\r\nsecond\r\n0\r\n\r\n"), step=1))
    conn = connect(server)
    other = b'{"second": true}'

    assert conn.post(request(server.port)) == (200, {"content-length": "5"}, b"first")
    assert not conn.closed
    assert conn.post(request(server.port, other, "/other")) == (200, {"transfer-encoding": "chunked"}, b"second")
    assert not conn.closed

    first, second = server.received
    assert_one_post(first, server.port)
    assert_one_post(second, server.port, other, "/other")
    assert (first.connection, second.connection, server.accepted) == (0, 0, 1)


def test_an_idle_connection_the_server_closed_raises_remote_disconnected(serve: Callable[..., ScriptedServer],
                                                                         connect: Callable[..., Connection]) -> None:
    server = serve(Reply(answer("200 OK", "Content-Length: 2", body=b"ok"), close=True))  # closes without saying so
    conn = connect(server)
    assert conn.post(request(server.port))[0] == 200
    assert not conn.closed  # the answer did not say it would close
    assert server.closed.wait(WAIT)

    with pytest.raises(http.client.RemoteDisconnected):
        conn.post(request(server.port))
    assert conn.closed
    assert len(server.received) == 1  # nothing was delivered on the closed connection: the caller may safely send again


def test_the_webhook_client_sends_again_on_a_fresh_connection_after_an_idle_close(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(Reply(answer("200 OK", "Content-Length: 0"), close=True), Reply(answer("204 No Content")))
    client = WebhookClient(f"http://127.0.0.1:{server.port}{PATH}", SECRET, clock=lambda: 1_700_000_000.0)

    assert isinstance(client.deliver("evt_1", '{"n": 1}'), Success)
    assert server.closed.wait(WAIT)
    assert isinstance(client.deliver("evt_2", '{"n": 2}'), Success)
    client._drop()  # close its connection, so the server's thread can end

    first, second = server.received
    assert_one_post(first, server.port, b'{"n": 1}')
    assert_one_post(second, server.port, b'{"n": 2}')
    assert (first.connection, second.connection) == (0, 1)
    assert first.fields("webhook-id") == ["evt_1"] and second.fields("webhook-id") == ["evt_2"]
    assert second.fields("webhook-signature") == [client.sign("evt_2", 1_700_000_000, '{"n": 2}')]


def test_a_delivery_verifies_as_a_receiver_checks_it_with_the_standard_webhooks_library(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(Reply(answer("204 No Content")))
    client = WebhookClient(f"http://127.0.0.1:{server.port}{PATH}", SECRET)
    body = '{"type":"job.succeeded","data":{"jobId":"cancel:s1:t1","note":"caf\u00e9"}}'

    assert isinstance(client.deliver("cancel:s1:t1:succeeded", body), Success)
    client._drop()

    [received] = server.received
    headers = {name: received.fields(name)[0] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    assert Webhook(SECRET).verify(received.body, headers) == json.loads(body)
    assert headers["webhook-id"] == "cancel:s1:t1:succeeded" and received.body == body.encode()
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(received.body.replace(b"t1", b"t2"), headers)


@pytest.mark.parametrize("data", [
    pytest.param(b"HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", id="not-http"),
    pytest.param(b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", id="two-digit-status"),
    pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", id="four-digit-status"),
    pytest.param(b"HTTP/1.1 OK 200\r\nContent-Length: 0\r\n\r\n", id="reason-first"),
    pytest.param(b"HTTP/1.1\r\nContent-Length: 0\r\n\r\n", id="no-status"),
    pytest.param(b"<html>hello</html>\r\n\r\n", id="not-an-answer"),
    pytest.param(b"\r\n\r\nHTTP/1.1 OK\r\n\r\n", id="empty-lines-then-no-status"),
])
def test_a_malformed_status_line_raises_http_exception(serve: Callable[..., ScriptedServer], connect: Callable[..., Connection],
                                                       data: bytes) -> None:
    server = serve(Reply(data))
    conn = connect(server)

    with pytest.raises(http.client.BadStatusLine):  # an http.client.HTTPException
        conn.post(request(server.port))


@pytest.mark.parametrize(("data", "error"), [
    pytest.param(answer("200 OK", "Content-Length: ten", body=b"0123456789"), http.client.HTTPException, id="content-length-not-a-number"),
    pytest.param(answer("200 OK", "Content-Length: -1", body=b"0123456789"), http.client.HTTPException, id="content-length-negative"),
    pytest.param(answer("200 OK", "Content-Length: 1_0", body=b"0123456789"), http.client.HTTPException, id="content-length-underscore"),
    # whitespace between a field's name and its colon: RFC 9112 5.1 forbids it (a proxy must strip it, a server refuse it)
    pytest.param(answer("200 OK", "X-Spaced : v", "Content-Length: 0"), http.client.HTTPException, id="space-before-colon"),
    # llhttp refuses whitespace around a chunk extension's ";", as Node does (RFC 9112's grammar tolerates it)
    pytest.param(answer("200 OK", "Transfer-Encoding: chunked", body=b"2 ; ext=q\r\nok\r\n0\r\n\r\n"), http.client.HTTPException,
                 id="chunk-extension-with-spaces"),
    pytest.param(answer("200 OK", "Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"), http.client.HTTPException,
                 id="chunk-size-not-hex"),
    pytest.param(answer("200 OK", "Content-Length: 10", body=b"01234"), http.client.IncompleteRead, id="body-cut-short"),
    pytest.param(answer("200 OK", "Transfer-Encoding: chunked", body=b"a\r\n01234"), http.client.IncompleteRead, id="chunk-cut-short"),
    pytest.param(answer("200 OK", "Transfer-Encoding: chunked", body=b"2\r\nok\r\n0\r\n"), http.client.IncompleteRead,
                 id="trailers-cut-short"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Len", http.client.IncompleteRead, id="head-cut-short"),
])
def test_a_malformed_or_cut_answer_raises_http_exception(serve: Callable[..., ScriptedServer], connect: Callable[..., Connection],
                                                         data: bytes, error: type[Exception]) -> None:
    assert issubclass(error, http.client.HTTPException)
    server = serve(Reply(data, close=True))
    conn = connect(server)

    with pytest.raises(error):
        conn.post(request(server.port))


def head_of(size: int) -> bytes:
    """An answer whose head (status line and fields, without the blank line that ends it) is ``size`` bytes."""
    start = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: "
    return start + b"p" * (size - len(start)) + b"\r\n\r\nok"


def test_a_head_of_max_head_bytes_is_accepted(serve: Callable[..., ScriptedServer], connect: Callable[..., Connection]) -> None:
    server = serve(Reply(head_of(MAX_HEAD)))
    conn = connect(server)

    status, fields, body = conn.post(request(server.port))
    assert (status, body, len(fields["x-pad"])) == (200, b"ok", MAX_HEAD - len(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: "))


@pytest.mark.parametrize("size", [MAX_HEAD + 1, MAX_HEAD + 4096, 4 * MAX_HEAD])
def test_a_head_longer_than_max_head_raises_line_too_long(serve: Callable[..., ScriptedServer], connect: Callable[..., Connection],
                                                          size: int) -> None:
    server = serve(Reply(head_of(size)))
    conn = connect(server)

    with pytest.raises(http.client.LineTooLong):  # an http.client.HTTPException
        conn.post(request(server.port))


def test_a_head_that_never_ends_raises_line_too_long(serve: Callable[..., ScriptedServer], connect: Callable[..., Connection]) -> None:
    server = serve(Reply(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * (4 * MAX_HEAD), step=16384))  # then silence, not a close
    conn = connect(server)

    with pytest.raises(http.client.LineTooLong):
        conn.post(request(server.port))


LONG = bytes(range(256)) * (2 * MAX_BODY // 256)  # twice MAX_BODY


def chunked(body: bytes, size: int) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)) + b"0\r\n\r\n"


@pytest.mark.parametrize(("data", "server_closes"), [
    pytest.param(answer("200 OK", f"Content-Length: {MAX_BODY + 1}", body=LONG[:MAX_BODY + 1]), False, id="content-length-one-over"),
    pytest.param(answer("200 OK", f"Content-Length: {len(LONG)}", body=LONG), False, id="content-length"),
    pytest.param(answer("200 OK", "Transfer-Encoding: chunked", body=chunked(LONG, 4096)), False, id="chunked-many"),
    pytest.param(answer("200 OK", "Transfer-Encoding: chunked", body=chunked(LONG, len(LONG))), False, id="chunked-one"),
    pytest.param(answer("200 OK", body=LONG, version="HTTP/1.0"), True, id="until-close"),
])
def test_a_body_longer_than_max_body_is_cut_and_its_connection_closed(serve: Callable[..., ScriptedServer],
                                                                       connect: Callable[..., Connection],
                                                                       data: bytes, server_closes: bool) -> None:
    server = serve(Reply(data, close=server_closes))
    conn = connect(server)

    status, _, body = conn.post(request(server.port))

    assert (status, len(body), body == LONG[:MAX_BODY]) == (200, MAX_BODY, True)
    assert conn.closed


@pytest.mark.parametrize("data", [
    pytest.param(answer("200 OK", f"Content-Length: {MAX_BODY}", body=LONG[:MAX_BODY]), id="content-length"),
    pytest.param(answer("200 OK", "Transfer-Encoding: chunked", body=chunked(LONG[:MAX_BODY], 1000)), id="chunked"),
])
def test_a_body_of_max_body_bytes_keeps_its_connection(serve: Callable[..., ScriptedServer], connect: Callable[..., Connection],
                                                       data: bytes) -> None:
    server = serve(Reply(data), Reply(answer("204 No Content")))
    conn = connect(server)

    assert conn.post(request(server.port))[2] == LONG[:MAX_BODY]
    assert not conn.closed
    assert conn.post(request(server.port))[0] == 204


@pytest.mark.parametrize("data", [
    pytest.param(b"", id="nothing"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", id="half-a-head"),
    pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n", id="only-100-continue"),
    pytest.param(answer("200 OK", "Content-Length: 10", body=b"01234"), id="half-a-body"),
    pytest.param(b"\r\n\r\n", id="only-empty-lines"),  # passed over, as llhttp does empty lines before a status line
])
def test_a_server_that_stops_answering_raises_timeout_within_the_read_timeout(serve: Callable[..., ScriptedServer],
                                                                             connect: Callable[..., Connection], data: bytes) -> None:
    server = serve(Reply(data, silent=not data))  # after its bytes, the server waits for a next request, holding the connection
    conn = connect(server, read_timeout=0.2)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        conn.post(request(server.port))
    assert 0.15 <= time.monotonic() - started < 1.5


def test_bytes_after_an_answer_leave_the_answer_and_close_the_connection(serve: Callable[..., ScriptedServer],
                                                                         connect: Callable[..., Connection]) -> None:
    server = serve(Reply(answer("200 OK", "Content-Length: 2", body=b"okHTTP/1.1 200 OK\r\n\r\n")))
    conn = connect(server)

    assert conn.post(request(server.port)) == (200, {"content-length": "2"}, b"ok")
    assert conn.closed  # what follows cannot be the answer to a request not yet sent: the connection is not trusted again


def tls_server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "server.pem", TLS / "server.key")
    return context


def test_a_receiver_over_tls_is_posted_to_on_one_kept_alive_connection(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(Reply(answer("200 OK", "Content-Length: 2", body=b"ok")), Reply(answer("204 No Content")), tls=tls_server_context())
    trusting = ssl.create_default_context(cafile=TLS / "ca.pem")
    conn = Connection("127.0.0.1", server.port, trusting, WAIT, WAIT)
    try:
        assert conn.post(request(server.port)) == (200, {"content-length": "2"}, b"ok")
        assert conn.post(request(server.port))[0] == 204
    finally:
        conn.close()

    assert [r.connection for r in server.received] == [0, 0]
    assert_one_post(server.received[0], server.port)


def test_the_webhook_client_trusts_certifi_s_bundle_not_the_system_s(serve: Callable[..., ScriptedServer],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "ca.pem"))  # the system's trust now includes the test CA
    server = serve(Reply(answer("204 No Content")), tls=tls_server_context())
    conn = Connection("127.0.0.1", server.port, ssl.create_default_context(), WAIT, WAIT)
    try:
        assert conn.post(request(server.port))[0] == 204, "a client on the system's trust would deliver"
    finally:
        conn.close()

    client = WebhookClient(f"https://127.0.0.1:{server.port}{PATH}", SECRET)
    outcome = client.deliver("evt_1", '{"n": 1}')

    assert isinstance(outcome, Transient) and outcome.failure.error_type == "SSLCertVerificationError"
    assert len(server.received) == 1, "nothing was sent to a receiver whose certificate certifi's bundle does not vouch for"
