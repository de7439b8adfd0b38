"""A private ``redis-server`` for the fault scenarios: the append-only file on, optionally a password and extra options."""

from __future__ import annotations

import subprocess
import time

import redis

from tests.support.redis_server import RedisServer


class FaultRedis(RedisServer):
    """:class:`RedisServer` with ``appendonly`` on by default, ``--requirepass`` and any extra server options.

    ``url`` carries the password when there is one, as ``PAYQ_REDIS_URL``
    would in production; :meth:`client` authenticates. ``stop`` (SIGTERM: a
    clean shutdown that flushes the append-only file), ``kill`` and ``start``
    reuse the same port and files, so jobs survive a restart.
    """

    def __init__(self, *, appendonly: bool = True, password: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.password = password
        self.extra_args = extra_args
        super().__init__(appendonly=appendonly)
        if password is not None:
            self.url = f"redis://:{password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on the same port and files as before, and wait until it answers PING."""
        args = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction", "--logfile", str(self.dir / "redis.log"), *self.extra_args,
        ]
        if self.password is not None:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        client = self.client()
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start: {(self.dir / 'redis.log').read_text()[-2000:]}") from None
                    time.sleep(0.05)  # poll interval, bounded by the deadline
        finally:
            client.close()

    def client(self) -> redis.Redis:
        """A decoding client for assertions (authenticated when the server has a password)."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, decode_responses=True,
                           socket_connect_timeout=2, socket_timeout=30)

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self.process is not None and self.process.poll() is None
