"""The names a job's life is told in: its states, what a worker finds when it picks one up, why it waits, why it was given up.

``StrEnum`` so that each value is the exact string stored in Redis and shown
to operators; compare members, never spelled-out strings.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """A job record's ``state``.

        queued -> running -> succeeded
                          -> deferred -> queued (moved back when due)
                          -> dead (in the dead-letter store) -> queued (replayed)
        waiting -> queued (a refund, released when its trip's capture succeeds)
                -> dead (its capture was dead-lettered and purged: capture-failed)
    """

    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    DEFERRED = "deferred"
    SUCCEEDED = "succeeded"
    DEAD = "dead"


SETTLED_STATES = frozenset({JobState.SUCCEEDED, JobState.DEAD})


class Verdict(StrEnum):
    """What BEGIN found when a worker picked a job up (``tasks/store/lua/begin.lua``)."""

    RUN = "run"              # call the API (at the job's turn, if the endpoint is paced); counted as an attempt
    PAUSED = "paused"        # the endpoint is paused (a 429) and not paced: wait it out, no call, no attempt
    PACED = "paced"          # the job's turn at the endpoint's pace is further off than a worker waits: no call, no attempt
    QUEUED = "queued"        # the job's store has had its share of the endpoint's turns: ask again later, no call, no attempt
    SETTLED = "settled"      # a capture that already succeeded: finish it without calling again
    SUCCEEDED = "succeeded"  # a stale copy of a finished job: nothing to do
    DEAD = "dead"            # a stale copy of a dead-lettered job: nothing to do
    DEFERRED = "deferred"    # a stale copy of a job waiting in the deferred set: nothing to do
    HELD = "held"            # another worker holds the job (its lease stands, or a lapse cannot be judged yet): nothing to do
    WAITING = "waiting"      # a copy of a refund still held for its capture (it is published when released): nothing to do
    UNRECORDED = "unrecorded"  # no job recorded under the message's id (Celery's own send_task): the worker enqueues it
    DIFFERS = "differs"      # the message's kwargs are not the job's on record (a message sent under a recorded job's id): nothing claimed


class DeferCause(StrEnum):
    """Why a job waits in the deferred set."""

    PAUSED = "paused"            # its endpoint was paused by a 429; it made no call
    PACED = "paced"              # its turn at the endpoint's pace is later; it made no call
    RETRY_AFTER = "retry-after"  # the API said when to come back (429 or 503)
    BACKOFF = "backoff"          # a transient fault without a delay: exponential backoff


class DeadLetterReason(StrEnum):
    """Why a job went to the dead-letter store; an operator's next step depends on it (docs/operating.md, "Inspecting and replaying dead letters")."""

    PERMANENT = "permanent"
    RETRIES_EXHAUSTED = "retries-exhausted"
    FEEDBACK_REJECTED = "feedback-rejected"
    INVALID_JOB = "invalid-job"
    INTERNAL_ERROR = "internal-error"
    CAPTURE_FAILED = "capture-failed"
    NOTIFY_FAILED = "notify-failed"

class TripRule(StrEnum):
    """A rule of a trip's books that an enqueue broke (the HTTP intake answers 409 naming it)."""

    CAPTURE_AFTER_CANCEL = "capture-after-cancel"
    CANCEL_AFTER_CAPTURE = "cancel-after-capture"
    REFUND_CURRENCY = "refund-currency"
    REFUND_WINDOW = "refund-window"
    OVER_REFUND = "over-refund"
