"""A private ``redis-server`` on a free port, which a test may stop, kill and start again."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.support.ports import free_port


class RedisServer:
    """``redis-server`` in a temporary directory; ``appendonly`` keeps data across :meth:`restart`.

    ``password`` starts it with ``--requirepass`` (``url`` then carries it, as
    ``PAYQ_REDIS_URL`` would in production, and :meth:`client` authenticates);
    ``extra_args`` are more server options.
    """

    def __init__(self, *, appendonly: bool = False, password: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not on PATH: apt-get install -y redis-server")
        self.appendonly = appendonly
        self.password = password
        self.extra_args = extra_args
        self.dir = Path(tempfile.mkdtemp(prefix="payq-redis-"))
        self.port = free_port()
        auth = f":{password}@" if password is not None else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server (on the same port and files as before) and wait until it answers PING."""
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

    def stop(self) -> None:
        """SHUTDOWN cleanly (the append-only file is flushed) and wait for the process to exit."""
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the way a crash or power cut ends it."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """Stop and start again with the same files."""
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        """A decoding client for assertions (authenticated when the server has a password)."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, decode_responses=True,
                           socket_connect_timeout=2, socket_timeout=30)

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        """Stop and remove the files."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
