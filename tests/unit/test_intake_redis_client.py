"""``payq serve``'s Redis client packs commands with hiredis: the same bytes redis-py's own packer sends."""

from __future__ import annotations

import pytest

from config.settings import Settings
from payq.serve.app import connect

ARGS = [
    ("EVALSHA", "0123abcd", 2, "payq:active", "payq:waiting", 1764000000.1234567, 7776000, "payq:events:0", "0", 0.1),
    ("HSET", "payq:job:capture:s1:t1", "kwargs", '{"amount": {"amount": "19.99", "code": "USD"}, "note": "é ✓"}'),
    ("SET", b"bytes-key", b"\x00\xffraw", "EX", 30),
    ("CONFIG GET", "maxmemory"),  # a two-word command name is split, as redis-py splits it
    ("LPUSH", "q", *[f"job-{i}" for i in range(3000)]),  # larger than redis-py's buffer cutoff
]


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6399/0", "rediss://127.0.0.1:6399/0", "unix:///tmp/payq-test.sock"])
@pytest.mark.parametrize("args", ARGS, ids=[str(a[0]) for a in ARGS])
def test_a_command_is_packed_to_the_same_bytes_as_redis_py_packs_it(url: str, args: tuple[object, ...]) -> None:
    client = connect(Settings(redis_url=url))
    pool = client.connection_pool
    packed = pool.make_connection()
    plain = pool.connection_class.__mro__[2](**pool.connection_kwargs)  # the URL's own class: TCP, TLS or a Unix socket

    assert isinstance(packed, type(plain)) and not isinstance(plain, type(packed))
    assert b"".join(packed.pack_command(*args)) == b"".join(plain.pack_command(*args))
