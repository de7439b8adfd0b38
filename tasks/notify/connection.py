"""The one HTTP exchange outcome notifications need: a POST on a kept-alive HTTP/1.1 connection, and its answer.

Not ``http.client``: a delivery is one fixed request whose head is mostly
known in advance, and ``http.client`` spent more CPU than the rest of a
delivery on its generality (two ``sendall`` per request, one for the head
and one for the body; the answer's header fields parsed by the ``email``
package). Here the request goes in one ``sendall``, and the answer is parsed
by llhttp (Node's parser, through httptools' ``HttpResponseParser``): its
status, header fields (names lower-cased), and a body framed by
``Content-Length``, chunked, or the receiver's close; interim 1xx answers are
passed over. payq only bounds what it keeps (:data:`MAX_HEAD`,
:data:`MAX_BODY`). Errors are ``http.client``'s own (``RemoteDisconnected``
when a kept-alive connection turns out closed before any byte of the answer,
``BadStatusLine`` and ``HTTPException`` for a malformed answer,
``IncompleteRead`` for one cut short, ``LineTooLong`` for an endless head)
and ``OSError`` / ``TimeoutError`` from the socket.
"""

from __future__ import annotations

import http.client
import socket
import ssl

from httptools import HttpParserError, HttpParserInvalidStatusError, HttpResponseParser

MAX_HEAD = 64 * 1024   # bytes of status line and header fields accepted
MAX_BODY = 64 * 1024   # bytes of an answer's body kept; a longer one is cut and its connection closed
_CHUNK = 65536
_HEAD_END = len(b"\r\n\r\n")


class _Answer:
    """llhttp's callbacks for one request's answer: the final answer's status, fields and body, and how far its head has come.

    Interim (1xx) answers are parsed and passed over. Bytes after the final
    answer, which no receiver should send, are noted (``after``): the
    connection is not used again.
    """

    def __init__(self) -> None:
        self.parser: HttpResponseParser | None = HttpResponseParser(self)
        self.fields: dict[str, str] = {}
        self.body = bytearray()
        self.status = 0
        self.keep_alive = False
        self.head_read = False    # the final answer's head is complete
        self.in_head = True       # reading a head: what MAX_HEAD bounds
        self.head_bytes = 0       # bytes fed while reading this head (those of the piece it began in, at most)
        self.piece = 0            # bytes in the piece being fed
        self.done = False
        self.after = False

    def on_message_begin(self) -> None:
        self.after = self.done
        if not self.done:
            self.fields, self.in_head, self.head_bytes = {}, True, self.piece

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.done:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1").strip()
            self.fields[key] = f"{self.fields[key]}, {text}" if key in self.fields else text

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.in_head = False
        if self.parser.get_status_code() >= 200:
            self.status, self.head_read = self.parser.get_status_code(), True

    def on_body(self, data: bytes) -> None:
        if not self.done:
            self.body += data

    def on_message_complete(self) -> None:
        assert self.parser is not None
        if not self.done and self.head_read:
            self.keep_alive, self.done = self.parser.should_keep_alive(), True

    def framed(self) -> bool:
        """Whether the body has a length of its own (``Content-Length`` or chunked), rather than ending with the connection."""
        return "content-length" in self.fields or "chunked" in self.fields.get("transfer-encoding", "").lower()


class Connection:
    """One connection to the receiver; ``closed`` once it must not be used again. ``tls``: the context for https, None for http."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, connect_timeout: float, read_timeout: float) -> None:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=host)
            sock.settimeout(read_timeout)  # connecting may take connect_timeout, each read read_timeout
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.closed = False

    def close(self) -> None:
        """Close the socket."""
        self.closed = True
        self._sock.close()

    def post(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one whole request (head and body) and read its answer: status, header fields (lower-cased names), body."""
        self._sock.sendall(request)
        answer = _Answer()
        try:
            received = False
            while not answer.done and len(answer.body) <= MAX_BODY:
                data = self._sock.recv(_CHUNK)
                if not data:
                    self.close()
                    _ended_by_close(answer, received)
                    break
                received = True
                self._feed(answer, data)
            if len(answer.body) > MAX_BODY:  # the rest is never read: the connection cannot be used again
                del answer.body[MAX_BODY:]
                self.close()
            elif not answer.keep_alive or answer.after:
                self.close()
            return answer.status, answer.fields, bytes(answer.body)
        finally:
            answer.parser = None  # the parser holds the answer's callbacks: no cycle left for the garbage collector

    def _feed(self, answer: _Answer, data: bytes) -> None:
        """Parse ``data``; a head is fed no further than :data:`MAX_HEAD` (and its blank line) allow."""
        assert answer.parser is not None
        view = memoryview(data)
        while view and not answer.done:
            if answer.in_head:
                room = MAX_HEAD + _HEAD_END - answer.head_bytes
                if room <= 0:
                    self.close()
                    raise http.client.LineTooLong("answer head")
                piece, view = view[:room], view[room:]
                answer.head_bytes += len(piece)
            else:
                piece, view = view, view[len(view):]
            answer.piece = len(piece)
            try:
                answer.parser.feed_data(piece)
            except HttpParserError as exc:
                self.close()
                if answer.done:  # bytes after the answer: it stands, the connection does not
                    return
                if isinstance(exc, HttpParserInvalidStatusError) or answer.parser.get_status_code() == 0:
                    raise http.client.BadStatusLine(str(exc)) from None
                raise http.client.HTTPException(str(exc)) from None
        answer.after = answer.after or bool(view)  # bytes left unparsed after the answer


def _ended_by_close(answer: _Answer, received: bool) -> None:
    """The receiver closed the connection: the end of a body without a length of its own, or an answer cut short."""
    if not received:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    if not answer.head_read or answer.framed():
        raise http.client.IncompleteRead(bytes(answer.body))
    answer.keep_alive, answer.done = False, True
