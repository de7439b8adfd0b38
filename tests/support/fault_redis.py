"""A private ``redis-server`` for the fault scenarios: the append-only file on, optionally a password and extra options."""

from __future__ import annotations

from tests.support.redis_server import RedisServer


class FaultRedis(RedisServer):
    """:class:`RedisServer` with ``appendonly`` on by default.

    ``stop`` (SIGTERM: a clean shutdown that flushes the append-only file),
    ``kill`` and ``start`` reuse the same port and files, so jobs survive a restart.
    """

    def __init__(self, *, appendonly: bool = True, password: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        super().__init__(appendonly=appendonly, password=password, extra_args=extra_args)
