"""The intake benchmark's load generator: HTTP/1.1 keep-alive POSTs from a process of its own, ``python -m benchmarks.httpload SPEC``.

It runs apart from the benchmark's process so its CPU is its own (and
measured) and the server gets the rest of the machine; it is deliberately
thin, so that on two cores it takes as little as it can from the server it
measures: asyncio streams, a fixed number of persistent connections, request
bytes formatted from a template (a capture with its own ``shoppingTripId`` per
job), and a response read as status line, headers and ``Content-Length``
bytes. No HTTP library's per-request work (header dicts, cookie jars, URL
parsing) is paid.

Three shapes (``SPEC`` is JSON; the answer is JSON on stdout):

- ``closed``: ``jobs`` single-job POSTs over ``connections`` connections, each
  sending its next as soon as it has the answer to the last: throughput.
- ``batch``: ``batches`` batch POSTs of ``size`` jobs each, the same way.
- ``open``: single-job POSTs at a steady ``rate`` a second, each due at
  ``start + i / rate`` whether or not earlier ones were answered (open loop),
  sent on whichever of ``connections`` connections is free; a request's
  latency is its answer's arrival minus its due time, so a server that falls
  behind shows in the figures instead of slowing the sender (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs and reads the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        """Connect to ``host:port``."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request`` (head and body), return the answer's status and body; the server must not close the connection."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        lowered = head.lower()
        at = lowered.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lowered.index(b"\r\n", at + 2)
            length = int(lowered[at + 17 : end])
        body = await self.reader.readexactly(length) if length else b""
        if b"\r\nconnection: close" in lowered:
            raise ConnectionError(f"the server closed the connection after a {status}: {body[:300]!r}")
        return status, body

    def close(self) -> None:
        """Close the connection."""
        self.writer.close()


class Requests:
    """The request bytes for ``POST /v1/jobs`` (one capture) and ``/v1/jobs/batch``, each job with its own trip."""

    def __init__(self, host: str, port: int, token: str, store: str, tag: str) -> None:
        self.head = (f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                     "Content-Length: {length}\r\n\r\n")
        self.store = store
        self.tag = tag

    def job(self, index: int) -> str:
        """The JSON of the ``index``-th capture."""
        return ('{"operation":"capture","storeId":"' + self.store + '","shoppingTripId":"' + self.tag + "-" + str(index)
                + '","amount":{"amount":"12.34","code":"USD"}}')

    def single(self, index: int) -> bytes:
        """``POST /v1/jobs`` with the ``index``-th capture."""
        body = self.job(index).encode()
        return b"POST /v1/jobs HTTP/1.1\r\n" + self.head.format(length=len(body)).encode() + body

    def batch(self, first: int, size: int) -> bytes:
        """``POST /v1/jobs/batch`` with captures ``first`` to ``first + size - 1``."""
        body = ('{"jobs":[' + ",".join(self.job(i) for i in range(first, first + size)) + "]}").encode()
        return b"POST /v1/jobs/batch HTTP/1.1\r\n" + self.head.format(length=len(body)).encode() + body


def _check(status: int, body: bytes, failures: list[str]) -> None:
    if status not in (200, 202) and len(failures) < 5:
        failures.append(f"{status}: {body[:300].decode('utf-8', 'replace')}")


async def closed(spec: dict[str, Any], make: Requests) -> dict[str, Any]:
    """``spec["jobs"]`` single POSTs (or ``spec["batches"]`` batches of ``spec["size"]``) over ``spec["connections"]``, back to back."""
    batch_size = spec.get("size", 0)
    count = spec["batches"] if batch_size else spec["jobs"]
    conns = [await Connection.open(spec["host"], spec["port"]) for _ in range(spec["connections"])]
    requests = [make.batch(i * batch_size, batch_size) if batch_size else make.single(i) for i in range(count)]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    per_request: list[float] = []
    next_index = 0

    async def work(conn: Connection) -> None:
        nonlocal next_index
        while next_index < count:
            request = requests[next_index]
            next_index += 1
            began = time.perf_counter()
            status, body = await conn.post(request)
            per_request.append(time.perf_counter() - began)
            statuses[status] += 1
            _check(status, body, failures)

    cpu0, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(work(c) for c in conns))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    for conn in conns:
        conn.close()
    return {"requests": count, "seconds": elapsed, "client_cpu_s": cpu, "statuses": dict(statuses), "failures": failures,
            "latencies": per_request}


async def open_loop(spec: dict[str, Any], make: Requests) -> dict[str, Any]:
    """``spec["jobs"]`` single POSTs due at ``spec["rate"]`` a second, on up to ``spec["connections"]`` connections."""
    count, rate = spec["jobs"], spec["rate"]
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(spec["connections"]):
        free.put_nowait(await Connection.open(spec["host"], spec["port"]))
    requests = [make.single(i) for i in range(count)]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    from_due: list[float] = []
    from_sent: list[float] = []
    late: list[float] = []  # how long after its due time each request was written (the sender's own lag)
    most_in_flight = in_flight = 0

    async def one(index: int, due: float) -> None:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        conn = await free.get()
        sent = time.perf_counter()
        late.append(sent - due)
        try:
            status, body = await conn.post(requests[index])
        finally:
            free.put_nowait(conn)
            in_flight -= 1
        done = time.perf_counter()
        from_due.append(done - due)
        from_sent.append(done - sent)
        statuses[status] += 1
        _check(status, body, failures)

    tasks: list[asyncio.Task[None]] = []
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.05
    for index in range(count):
        due = start + index / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    while not free.empty():
        free.get_nowait().close()
    return {"requests": count, "seconds": elapsed, "client_cpu_s": cpu, "statuses": dict(statuses), "failures": failures,
            "latencies": from_due, "latencies_from_sent": from_sent, "sender_late": late, "most_in_flight": most_in_flight}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """The figures for ``spec``."""
    make = Requests(spec["host"], spec["port"], spec["token"], spec["store"], spec["tag"])
    if spec["shape"] == "open":
        return await open_loop(spec, make)
    return await closed(spec, make)


def main(argv: list[str]) -> int:
    """Run the spec in ``argv[0]`` (JSON), print the answer as JSON."""
    spec = json.loads(argv[0])
    print(json.dumps(asyncio.run(run(spec))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
