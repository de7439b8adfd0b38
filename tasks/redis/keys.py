"""Every Redis key payq writes or reads, named in one place so operators, code and tests agree."""

from __future__ import annotations

PREFIX = "payq"
DEFERRED = f"{PREFIX}:deferred"            # ZSET job id -> due time (epoch seconds)
# ZSET job id -> when it last became queued or running: the console's list of live jobs
ACTIVE = f"{PREFIX}:active"
BACKLOG_STORES = f"{PREFIX}:backlog-stores"  # ZSET: the stores with jobs on record, by their last enqueue
DEAD_LETTERS = f"{PREFIX}:dlq"             # HASH job id -> entry JSON
DEAD_LETTER_INDEX = f"{PREFIX}:dlq:index"  # ZSET job id -> time dead-lettered
# HASH reason -> number of entries; kept by the dead-letter scripts so ``payq stats``
# and every metrics scrape read a few counters instead of parsing every entry.
DEAD_LETTER_REASONS = f"{PREFIX}:dlq:reasons"
# ZSET worker id -> its last heartbeat (Redis's clock): the worker processes alive, and when they last said so
WORKERS = f"{PREFIX}:workers"
# HASH worker id -> since when it has beaten without a break (a gap of over half a lease breaks the run)
WORKERS_STEADY = f"{PREFIX}:workers:steady"
# ZSET job id -> when its holder's lease ends (Redis's clock): every running job that a worker holds
LEASES = f"{PREFIX}:leases"
# STRING: jobs given back to their queue after their holder's lease lapsed (payq_jobs_recovered_total)
RECOVERED = f"{PREFIX}:recovered"
# ZSET worker id -> when it first fetched into its in-flight lists (Redis's clock): the workers that hold
# fetched messages; a dead one's are given back (tasks/store/lua/recover.lua)
INFLIGHT = f"{PREFIX}:inflight"
INFLIGHT_PREFIX = f"{INFLIGHT}:"  # for scripts that make a worker's list keys
# STREAM: one entry per script that published a message (trimmed to a few): idle workers block on it (XREAD) instead of polling
WAKE = f"{PREFIX}:wake"


def inflight(worker: str, queue: str) -> str:
    """LIST: the messages ``worker`` fetched from ``queue`` and has not yet acknowledged, newest first."""
    return f"{INFLIGHT_PREFIX}{worker}:{queue}"


# A queue's messages wait in one lane per store, so that a worker's fetch takes the stores in turn (tasks/store/lanes.py):
# LIST payq:lane:<queue>:<store>, newest first; and LIST payq:lanes:<queue>, the stores whose lane holds any, in turn
# (the next on the right). The queue's own list (named as the queue) still holds what goes to its head (late jobs,
# given back) and what Celery's own producers and the previous version publish: a fetch takes it first.
LANE_PREFIX = f"{PREFIX}:lane:"  # for scripts that make a lane's key
RING_PREFIX = f"{PREFIX}:lanes:"  # for scripts that make a queue's ring


def lane(queue: str, store: str) -> str:
    """LIST: the messages published on ``queue`` for ``store``'s jobs, newest first."""
    return f"{LANE_PREFIX}{queue}:{store}"


def ring(queue: str) -> str:
    """LIST: the stores whose lane of ``queue`` holds messages, each once; a fetch takes them from the right, in turn."""
    return f"{RING_PREFIX}{queue}"


# STRING: a counter every `WAIT` for replicas writes first, so the wait covers whatever any client wrote before it
REPLICA_PROBE = f"{PREFIX}:replicas:probe"


# ZSET job id -> when it began to wait: refunds held until their trip's capture succeeds
WAITING = f"{PREFIX}:waiting"
JOB_PREFIX = f"{PREFIX}:job:"  # for scripts that make a job's key from its id


def job(job_id: str) -> str:
    """HASH: a job's record (operation, kwargs, state, attempts, outcome, result)."""
    return f"{JOB_PREFIX}{job_id}"


TRIP_PREFIX = f"{PREFIX}:trip:"  # for scripts that make a trip's key from a dead letter's kwargs


def trip(store_id: str, trip_id: str) -> str:
    """HASH: a trip's books: its capture (job id, cents, currency, when it succeeded), its cancel, its refunds (tasks/jobs/books.py)."""
    return f"{TRIP_PREFIX}{store_id}:{trip_id}"


def held(store_id: str, trip_id: str) -> str:
    """LIST: ids of the trip's refunds waiting for its capture to succeed, in the order they came (its books' key + ``:held``)."""
    return f"{trip(store_id, trip_id)}:held"


def replays(job_id: str) -> str:
    """LIST: a job's replay history, one JSON object per replay."""
    return f"{PREFIX}:job:{job_id}:replays"


def deferrals(job_id: str) -> str:
    """LIST: why a job waited, one JSON object per deferral, the latest few kept."""
    return f"{PREFIX}:job:{job_id}:deferrals"


def pace(operation: str) -> str:
    """HASH: an endpoint's pace: the next free turn (``tat``) and what its 429s taught (``accepted``, ``since``, ``climb``)."""
    return f"{PREFIX}:pace:{operation}"


# Seconds a tenth-of-a-second count of successful calls is kept: the pace's measuring window, then the wait for the
# calls in flight at a 429 (tasks.pacing.rules.lesson_at: the longest call, 13 s by default), then a second to read them.
SUCCESSES_KEPT = 20


def successes(operation: str, tenth: int) -> str:
    """STRING: successful calls to ``operation``'s endpoint in one tenth of a second (epoch tenths), kept a few seconds."""
    return f"{PREFIX}:pace:{operation}:ok:{tenth}"


# HASH "<operation>:<status>" -> API calls made, by status ("none": no response): payq_api_calls_total
API_CALLS = f"{PREFIX}:api:calls"


# LIST of JSON: the latest lifts of an endpoint's pause and learned pace by an operator, newest first (tasks/pacing/endpoints.py)
ENDPOINT_LOG = f"{PREFIX}:endpoints:log"
# LIST of JSON: the console's action log, newest first: who replayed, purged or lifted what, and who was refused (payq/serve/console/actionlog.py)
CONSOLE_LOG = f"{PREFIX}:console:log"


def backlog(store: str) -> str:
    """ZSET: a store's jobs enqueued and not known to be settled, by enqueue time (:mod:`tasks.store.backlog`)."""
    return f"{PREFIX}:backlog:{store}"


def fair_clocks(operation: str) -> str:
    """HASH: each store's clocks at an endpoint (:mod:`tasks.pacing.fairness`).

    ``turn:``/``line:<storeId>``: its fair share; ``cap:``/``capline:<storeId>``: its cap of calls a second.
    """
    return f"{PREFIX}:fair:{operation}"


def store_calls(tens: int) -> str:
    """HASH: calls begun per ``<operation>:<storeId>`` in one ten-second window (epoch seconds // 10), kept two minutes."""
    return f"{PREFIX}:store-calls:{tens}"


def fair_waiting(operation: str) -> str:
    """ZSET: the stores waiting for an endpoint's turns, scored by the later of their clocks (gone once it passes)."""
    return f"{PREFIX}:fair:{operation}:waiting"


def pause(operation: str) -> str:
    """STRING: epoch second until which no worker calls ``operation``'s endpoint."""
    return f"{PREFIX}:pause:{operation}"


# The outbox of outcome notifications (tasks/notify/outbox.py). The STREAM holds events to deliver, read by
# the workers' consumer group; PENDING indexes every event not yet delivered nor dead-lettered
# (event id -> when its outcome was recorded): its size is the outbox's depth, its first the
# oldest; RETRY holds events waiting for a later try (entry JSON -> when due).
OUTBOX = f"{PREFIX}:outbox"
OUTBOX_PENDING = f"{PREFIX}:outbox:pending"
OUTBOX_RETRY = f"{PREFIX}:outbox:retry"
OUTBOX_GROUP = "payq-notify"  # the workers' consumer group on OUTBOX


# STRING: worker processes started, each counted at its first heartbeat (payq_worker_starts_total)
WORKER_STARTS = f"{PREFIX}:workers:starts"
# HASH HTTP status -> the intake's answers to /v1 requests, added up by every payq serve (payq_intake_answers_total)
INTAKE_ANSWERS = f"{PREFIX}:intake:answers"
