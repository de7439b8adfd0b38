"""The console's action log: every action a user took from the console, and every one refused them, under their name.

A capped Redis list (``payq:console:log``, newest first), so every ``payq
serve`` behind one proxy writes to and shows the same log; each entry is
also one line in the process's log.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import cast

import redis

from tasks.redis import keys

log = logging.getLogger("payq.console")
KEPT = 1000  # entries kept: months of an operator's actions


@dataclass(frozen=True)
class Action:
    """One thing a user did (or was refused) from the console: when, who (and their role then), what, and what came of it."""

    at: float
    user: str
    role: str
    action: str
    outcome: str

    def line(self) -> str:
        """The entry as one line of the process's log."""
        return f"console: {self.user} ({self.role}) {self.action}: {self.outcome}"


class ActionLog:
    """Appends to and reads the console's action log."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def record(self, action: Action) -> None:
        """Append ``action`` (and log its line)."""
        log.info("%s", action.line())
        pipe = self._redis.pipeline(transaction=True)
        pipe.lpush(keys.CONSOLE_LOG, json.dumps(asdict(action)))
        pipe.ltrim(keys.CONSOLE_LOG, 0, KEPT - 1)
        pipe.execute()

    def recent(self, limit: int) -> list[Action]:
        """The latest ``limit`` entries, newest first."""
        return [Action(**json.loads(item)) for item in cast(list[str], self._redis.lrange(keys.CONSOLE_LOG, 0, limit - 1))]
