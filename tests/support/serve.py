"""``ServeProcess``: the real ``payq serve`` on a free port, ready once ``/healthz`` answers."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import redis
import requests

from tasks.redis import keys
from tests.support.http_process import HttpProcess
from tests.support.payq_cli import PAYQ


class ServeProcess(HttpProcess):
    """``payq serve --port <free port>`` against ``redis_url``; ``env`` adds ``PAYQ_*`` settings (tokens, console auth, ...)."""

    name = "payq serve"

    def __init__(self, redis_url: str, env: dict[str, str] | None = None, startup_timeout: float = 60.0) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
        self.env = {**base, "PAYQ_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **(env or {})}
        super().__init__(lambda port: [str(PAYQ), "serve", "--host", "127.0.0.1", "--port", str(port)], self.env, "/healthz",
                         cwd=tempfile.gettempdir(), startup_timeout=startup_timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to ``path`` (``timeout`` defaults to 10 s)."""
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url + path, **kwargs)


def written(rdb: redis.Redis) -> list[str]:
    """Every key in Redis but the intake's answer counts: what a refused request must not have written.

    ``payq serve`` adds its answers by status to ``payq:intake:answers`` every
    few seconds (payq/serve/answers.py), whichever request is being answered
    then: a count, not a job's data.
    """
    return sorted(key for key in rdb.scan_iter() if key != keys.INTAKE_ANSWERS)
