"""What every answer carries and what every request is believed: /v1 headers, forwarded headers, and 413 for a body over the limit.

A forged ``X-Forwarded-Host`` is tested where it matters, on a console POST
(tests/console/test_console_http.py); here, a 2 MB chunked body from Node's
``fetch`` (the client that met EPIPE) and from a raw socket.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import pytest
import redis

from payq.serve.bodies import JOB_BODY_LIMIT
from tests.serve.helpers import TOKEN_A, bearer, cancel, capture, get, post
from tests.support.serve import ServeProcess, written

TWO_MB = 2 * 1024 * 1024


def test_every_v1_answer_is_not_stored_and_not_sniffed(serve: ServeProcess) -> None:
    answers = {
        "202": post(serve, "/v1/jobs", capture("t1")),
        "200": post(serve, "/v1/jobs", capture("t1")),
        "409": post(serve, "/v1/jobs", capture("t1", amount="2.00")),
        "422": post(serve, "/v1/jobs", capture("t1", amount="x")),
        "batch": post(serve, "/v1/jobs/batch", {"jobs": [cancel("t2")]}),
        "job": get(serve, "/v1/jobs/capture:store-a:t1"),
        "trip": get(serve, "/v1/trips/store-a/t1"),
        "401": get(serve, "/v1/jobs/capture:store-a:t1", token=None),
        "404": get(serve, "/v1/jobs/capture:store-a:nope"),
        "no route": get(serve, "/v1/nothing"),
        "405": serve.request("DELETE", "/v1/jobs", headers=bearer(TOKEN_A)),
    }
    for name, answer in answers.items():
        assert answer.headers.get("Cache-Control") == "no-store", name
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", name
    health = serve.request("GET", "/healthz")
    assert health.headers["X-Content-Type-Options"] == "nosniff" and "Cache-Control" not in health.headers


NODE_CHUNKED = """
const [url, token, size] = process.argv.slice(-3);
const piece = new TextEncoder().encode(" ".repeat(65536));
const body = new ReadableStream({start(c) { for (let sent = 0; sent < Number(size); sent += piece.length) c.enqueue(piece); c.close(); }});
fetch(url + "/v1/jobs", {method: "POST", duplex: "half", body, headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}})
  .then(async (r) => console.log(JSON.stringify({status: r.status, type: r.headers.get("content-type"), body: await r.json()})))
  .catch((e) => console.log(JSON.stringify({error: String(e), cause: String(e.cause)})));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the client that met EPIPE is Node's fetch")
def test_a_chunked_2_mb_body_from_node_s_fetch_gets_413_not_a_broken_connection(serve: ServeProcess, rdb: redis.Redis) -> None:
    for _ in range(3):  # a reset races the answer: one lucky read would prove nothing
        done = subprocess.run(["node", "-e", NODE_CHUNKED, serve.url, TOKEN_A, str(TWO_MB)], capture_output=True, text=True, timeout=60,
                              check=True)
        answer = json.loads(done.stdout)
        assert answer.get("status") == 413, answer
        assert answer["type"] == "application/problem+json" and answer["body"]["type"] == "urn:payq:problem:body-too-large"
    assert written(rdb) == []


def test_a_chunked_2_mb_body_is_answered_413_and_the_connection_serves_the_next_request(serve: ServeProcess) -> None:
    piece = b" " * 65536
    with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as sock:
        sock.sendall(f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        for _ in range(TWO_MB // len(piece)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))  # a reset would fail this write
        sock.sendall(b"0\r\n\r\n")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b'{"ok":true}'):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    first, second = received.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"413 ") and b"the body must be at most %d bytes" % JOB_BODY_LIMIT in first
    assert second.startswith(b"200 ")
