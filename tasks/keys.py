"""Every Redis key payq writes or reads, named in one place so operators, code and tests agree."""

from __future__ import annotations

PREFIX = "payq"
DEFERRED = f"{PREFIX}:deferred"            # ZSET job id -> due time (epoch seconds)
# ZSET job id -> when it last became queued or running. kombu pops a message and
# records it as unacknowledged in two steps; a worker killed between them takes
# the message with it. A job left here far longer than any job runs is re-published.
ACTIVE = f"{PREFIX}:active"
DEAD_LETTERS = f"{PREFIX}:dlq"             # HASH job id -> entry JSON
DEAD_LETTER_INDEX = f"{PREFIX}:dlq:index"  # ZSET job id -> time dead-lettered
# HASH reason -> number of entries; kept by the dead-letter scripts so ``payq stats``
# and every metrics scrape read a few counters instead of parsing every entry.
DEAD_LETTER_REASONS = f"{PREFIX}:dlq:reasons"
# kombu's Redis transport keeps delivered, not yet acknowledged messages in this HASH (not payq's name)
UNACKED = "unacked"


def job(job_id: str) -> str:
    """HASH: a job's record (operation, kwargs, state, attempts, outcome, result)."""
    return f"{PREFIX}:job:{job_id}"


def replays(job_id: str) -> str:
    """LIST: a job's replay history, one JSON object per replay."""
    return f"{PREFIX}:job:{job_id}:replays"


def deferrals(job_id: str) -> str:
    """LIST: why a job waited, one JSON object per deferral, the latest few kept."""
    return f"{PREFIX}:job:{job_id}:deferrals"


def pause(operation: str) -> str:
    """STRING: epoch second until which no worker calls ``operation``'s endpoint."""
    return f"{PREFIX}:pause:{operation}"
