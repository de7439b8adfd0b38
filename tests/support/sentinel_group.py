"""A primary, a replica and three Sentinels, each a real ``redis-server`` on a free loopback port.

Sentinels notice a dead primary after ``down-after-milliseconds`` (1 s here,
30 s by Redis's default) and promote the replica: a failover takes a few
seconds, so tests can afford one or two. Both data servers keep an
append-only file, so a killed primary comes back with whatever it held.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.support.polling import wait_for
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

MASTER = "payq"
# Short, so a test's failover takes seconds; not shorter, or a primary busy for a moment on a loaded machine
# (a fork for a replica's sync) is taken for dead and failed over a second time
DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 2000
# Sentinel turns a primary that came back into a replica only after it has reported itself a primary
# for 4 of its 2 s publish periods: ~8 s, plus its 1 s look at an instance that was down.
DEMOTED_WITHIN = 30.0


class SentinelProcess:
    """``redis-server sentinel.conf --sentinel`` watching ``MASTER`` at ``primary_port``, quorum 2."""

    def __init__(self, primary_port: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="payq-sentinel-"))
        self.port = free_port()
        conf = self.dir / "sentinel.conf"
        conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", f"logfile {self.dir / 'sentinel.log'}",
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2",
            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER} 1", "",
        ]))
        self.process = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=10, what=f"sentinel on {self.port}")

    def client(self) -> redis.Redis:
        """A client for this Sentinel's own commands."""
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_connect_timeout=1, socket_timeout=2)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            if self.process.poll() is not None:
                raise RuntimeError(f"sentinel did not start: {(self.dir / 'sentinel.log').read_text()[-2000:]}") from None
            return False

    def master(self) -> dict[str, str]:
        """``SENTINEL MASTER`` as a dict (``num-other-sentinels``, ``num-slaves``, ``flags``, ...)."""
        return dict(self.client().execute_command("SENTINEL", "MASTER", MASTER))

    def primary_port(self) -> int:
        """The port of the primary this Sentinel names now."""
        _, port = self.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        return int(port)

    def switches(self) -> int:
        """Failovers this Sentinel has seen complete (``+switch-master`` in its log)."""
        return (self.dir / "sentinel.log").read_text().count("+switch-master")

    def close(self) -> None:
        """Kill the process and remove its files."""
        self.process.kill()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelGroup:
    """Two data servers (one primary, one replica) and three Sentinels; :attr:`env` points payq at them."""

    def __init__(self) -> None:
        first = RedisServer(appendonly=True)
        second = RedisServer(appendonly=True, extra_args=("--replicaof", "127.0.0.1", str(first.port)))
        self.servers = [first, second]
        self.sentinels = [SentinelProcess(first.port) for _ in range(3)]
        self.url = ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels)
        self.env = {"PAYQ_REDIS_URL": self.url, "PAYQ_REDIS_SENTINEL_MASTER": MASTER}
        # a failover needs the Sentinels to know each other (they meet through the primary every 2 s) and the replica
        wait_for(lambda: all(int(s.master()["num-other-sentinels"]) == 2 and int(s.master()["num-slaves"]) == 1 for s in self.sentinels),
                 timeout=20, what="the Sentinels to know each other and the replica")
        self.wait_in_sync()

    def primary(self) -> RedisServer:
        """The server the Sentinels name as primary."""
        port = self.sentinels[0].primary_port()
        return next(s for s in self.servers if s.port == port)

    def replica(self) -> RedisServer:
        """The other server."""
        primary = self.primary()
        return next(s for s in self.servers if s is not primary)

    def failovers(self) -> int:
        """Failovers so far, as the Sentinels saw them (the most any one saw)."""
        return max(sentinel.switches() for sentinel in self.sentinels)

    def kill_primary(self) -> RedisServer:
        """SIGKILL the primary (a crash: nothing flushed, no goodbye to its replica); returns it."""
        primary = self.primary()
        primary.kill()
        return primary

    def wait_promoted(self, old: RedisServer, timeout: float = 30) -> RedisServer:
        """Wait until every Sentinel names another primary than ``old`` and it says it is one; returns it."""
        def promoted() -> RedisServer | None:
            if any(s.primary_port() == old.port for s in self.sentinels):
                return None
            new = self.primary()
            return new if new.client().execute_command("ROLE")[0] == "master" else None

        return wait_for(promoted, timeout=timeout, interval=0.1, what="a Sentinel failover")

    def bring_back(self, server: RedisServer, *, as_replica: bool) -> None:
        """Start ``server`` again on its files: told at once to follow the primary, or (``as_replica=False``) as it was,
        a primary with what it held, for the Sentinels to demote."""
        server.extra_args = ("--replicaof", "127.0.0.1", str(self.primary().port)) if as_replica else ()
        server.start()

    def wait_in_sync(self, timeout: float = DEMOTED_WITHIN) -> None:
        """Wait until the primary has its replica online and caught up (every Sentinel agreeing who is primary)."""
        def in_sync() -> bool:
            ports = {s.primary_port() for s in self.sentinels}
            if len(ports) != 1:
                return False
            primary = self.primary().client()
            info = primary.info("replication")
            replica = info.get("slave0")
            return (info["role"] == "master" and isinstance(replica, dict) and replica.get("state") == "online"
                    and int(replica["offset"]) >= int(info["master_repl_offset"]) - 1024 * 1024)

        wait_for(in_sync, timeout=timeout, interval=0.1, what="the replica in sync with the primary")
        # WAIT is the replicas' own word that they hold everything
        wait_for(lambda: int(self.primary().client().execute_command("WAIT", 1, 500)) >= 1, timeout=timeout, what="WAIT 1")

    def close(self) -> None:
        """Kill everything and remove the files."""
        for sentinel in self.sentinels:
            sentinel.close()
        for server in self.servers:
            server.close()
