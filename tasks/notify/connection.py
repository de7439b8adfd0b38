"""The one HTTP exchange outcome notifications need: a POST on a kept-alive HTTP/1.1 connection, and its answer.

Not ``http.client``: a delivery is one fixed request whose head is mostly
known in advance, and ``http.client`` spent more CPU than the rest of a
delivery on its generality (two ``sendall`` per request, one for the head
and one for the body; the answer's header fields parsed by the ``email``
package). Here the request goes in one ``sendall`` and the answer is parsed
by hand: its status line, header fields (names lower-cased), and a body of
``Content-Length``, chunked, or read until the receiver closes (HTTP/1.0).
Interim 1xx answers are skipped. Errors are ``http.client``'s own
(``RemoteDisconnected`` when a kept-alive connection turns out closed before
any byte of the answer, ``HTTPException`` for a malformed one) and
``OSError`` / ``TimeoutError`` from the socket.
"""

from __future__ import annotations

import http.client
import socket
import ssl

MAX_HEAD = 64 * 1024   # bytes of status line and header fields accepted
MAX_BODY = 64 * 1024   # bytes of an answer's body kept; a longer one is cut and its connection closed
_CHUNK = 65536


class Connection:
    """One connection to the receiver; ``closed`` once it must not be used again."""

    def __init__(self, host: str, port: int, https: bool, connect_timeout: float, read_timeout: float) -> None:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if https:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            sock.settimeout(read_timeout)  # connecting may take connect_timeout, each read read_timeout
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._buffer = b""
        self.closed = False

    def close(self) -> None:
        """Close the socket."""
        self.closed = True
        self._sock.close()

    def post(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one whole request (head and body) and read its answer: status, header fields (lower-cased names), body."""
        self._sock.sendall(request)
        while True:
            status, version, fields = self._read_head()
            if 100 <= status < 200:
                continue  # an interim answer (100 Continue, 103 Early Hints): the final one follows
            body = self._read_body(status, fields)
            tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
            if "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens):
                self.close()
            return status, fields, body

    def _recv(self) -> bytes:
        data = self._sock.recv(_CHUNK)
        if not data:
            self.close()
        return data

    def _read_head(self) -> tuple[int, str, dict[str, str]]:
        started = bool(self._buffer)
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD + 3:  # the head, before its blank line, is longer than MAX_HEAD
                raise http.client.LineTooLong("answer head")
            data = self._recv()
            if not data:
                if started:
                    raise http.client.IncompleteRead(self._buffer)
                raise http.client.RemoteDisconnected("Remote end closed connection without response")
            started = True
            self._buffer += data
        if end > MAX_HEAD:  # a long head may arrive whole in the last read
            raise http.client.LineTooLong("answer head")
        head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4:]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise http.client.BadStatusLine(lines[0])
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                continue
            name, value = name.strip().lower(), value.strip()
            fields[name] = f"{fields[name]}, {value}" if name in fields else value
        return int(parts[1]), parts[0], fields

    def _read_body(self, status: int, fields: dict[str, str]) -> bytes:
        if status in (204, 304):
            return b""
        if "chunked" in fields.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = fields.get("content-length")
        if length is None:  # the body ends when the receiver closes the connection
            body = self._buffer
            while len(body) <= MAX_BODY and (data := self._recv()):
                body += data
            self._buffer = b""
            self.close()
            return body[:MAX_BODY]
        digits = length.split(",")[0].strip()
        if not (digits.isascii() and digits.isdigit()):  # int() would take "-1", "+1" and "1_0"
            raise http.client.HTTPException(f"invalid Content-Length {length!r}")
        size = int(digits)
        if size <= MAX_BODY:
            return self._take(size)
        body = self._take(MAX_BODY)  # the rest is never read: the connection cannot be used again
        self.close()
        return body

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            data = self._recv()
            if not data:
                raise http.client.IncompleteRead(self._buffer, size - len(self._buffer))
            self._buffer += data
        taken, self._buffer = self._buffer[:size], self._buffer[size:]
        return taken

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD:
                raise http.client.LineTooLong("chunk line")
            data = self._recv()
            if not data:
                raise http.client.IncompleteRead(self._buffer)
            self._buffer += data
        line, self._buffer = self._buffer[:end], self._buffer[end + 2:]
        return line

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            try:
                size = int(self._line().split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise http.client.HTTPException("invalid chunk size") from None
            if size == 0:
                while self._line():  # trailer fields, up to the empty line
                    pass
                return body[:MAX_BODY]
            if len(body) + size > MAX_BODY:
                body += self._take(min(size, MAX_BODY - len(body) + 1))
                self.close()
                return body[:MAX_BODY]
            body += self._take(size)
            self._take(2)  # the chunk's CRLF
