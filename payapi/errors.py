"""payq's exceptions: one root, two branches.

    PayqError
    ├── RetryableError          the same thing may work later
    │   ├── BrokerUnavailable   Redis did not answer
    │   ├── NotReplicated       a write reached the primary but not enough replicas in time
    │   └── Deferred            a job waits in the deferred set (Flower shows it as RETRY)
    └── PermanentError          trying again cannot help
        ├── InvalidRequest      input broke a rule; names each field and rule
        │   └── JobConflict     a job id already holds a different job; names each field, stored and sent
        ├── DeadLettered        a job went to the dead-letter store (Flower shows it as FAILURE)
        └── ConfigurationError  the process cannot start as configured

Every class pickles with its attributes intact: Celery pickles exceptions into
events and results, and a class that forgets its arguments breaks there.
"""

from __future__ import annotations

from dataclasses import dataclass


class PayqError(Exception):
    """Root of every error payq raises on purpose."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Exception pickles as cls(*self.args); our subclasses keep keyword
        # attributes, so rebuild from the instance dict instead.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[PayqError], args: tuple[object, ...], state: dict[str, object]) -> PayqError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class RetryableError(PayqError):
    """The operation failed for now; the same call may succeed later."""


class PermanentError(PayqError):
    """The operation cannot succeed as it stands; retrying would not help."""


class BrokerUnavailable(RetryableError):
    """Redis could not be reached after a short bounded retry."""


class RedisFull(RetryableError):
    """Redis refused a write because it is full (``maxmemory`` reached, with ``noeviction``); nothing was written.

    Sending the same jobs again is safe once an operator made room (a larger
    ``maxmemory``, a shorter ``PAYQ_JOB_RETENTION_DAYS``: docs/scaling.md).
    """


class NotReplicated(RetryableError):
    """A write reached Redis's primary, but fewer replicas than ``PAYQ_REDIS_MIN_REPLICAS`` confirmed it in time.

    Not yet safe from a failover, so not reported as done: it may still take
    effect, and sending it again is safe (enqueueing is idempotent).
    """


class Deferred(RetryableError):
    """A job waits in the deferred set until ``until`` (epoch seconds).

    ``cause`` is why (a :class:`tasks.states.DeferCause`); ``description`` is
    the sentence Flower shows with the RETRY.
    """

    def __init__(self, cause: str, until: float, description: str) -> None:
        super().__init__(f"{description}; runs again at {until:.3f}")
        self.cause = cause
        self.until = until
        self.description = description


@dataclass(frozen=True)
class FieldProblem:
    """One broken rule: ``field`` is a dotted wire path such as ``amount.amount``."""

    field: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}"


class InvalidRequest(PermanentError):
    """Input broke one or more rules; ``problems`` names each field and the rule it broke."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems

    @property
    def errors(self) -> list[FieldProblem]:
        """Every problem, as the HTTP intake's ``errors`` names them (the same list as ``problems``)."""
        return self.problems


@dataclass(frozen=True)
class FieldDifference:
    """One field in which a job sent again differs from the job stored under its id, both values in their wire form.

    ``index`` is the job's position in a batch (None for one job); a value is
    None where that side has no such field.
    """

    job_id: str
    field: str
    stored: object
    sent: object
    index: int | None = None

    @property
    def rule(self) -> str:
        """The broken rule, the same words over HTTP, from ``payq enqueue`` and from the producer."""
        return (f"differs from the job enqueued before under this id: stored {_shown(self.stored)}, sent {_shown(self.sent)};"
                " nothing was changed (a job id names one job: send the same fields, or a new job under a new id)")


def _shown(value: object) -> str:
    return "(none)" if value is None else str(value)


class JobConflict(InvalidRequest):
    """A job was sent again under an id that already holds a different job (a changed amount, say): refused, nothing changed.

    ``differences`` names each differing field with the stored and the sent
    value. In a batch the other jobs were enqueued all the same; the
    differences carry each refused job's ``index``.
    """

    def __init__(self, differences: list[FieldDifference]) -> None:
        super().__init__([FieldProblem(d.field if d.index is None else f"[{d.index}] {d.field}", d.rule) for d in differences])
        self.differences = differences

    @property
    def job_ids(self) -> list[str]:
        """The refused jobs' ids, each once, in order."""
        return list(dict.fromkeys(d.job_id for d in self.differences))


class DeadLettered(PermanentError):
    """A job was written to the dead-letter store with ``reason`` (a :class:`tasks.states.DeadLetterReason`).

    ``status`` is the API's HTTP status where there was one; ``description``
    the failure as a person reads it (Flower shows it with the FAILURE).
    """

    def __init__(self, reason: str, description: str, status: int | None = None) -> None:
        super().__init__(f"{reason}: {description}")
        self.reason = reason
        self.description = description
        self.status = status


class ConfigurationError(PermanentError):
    """Settings or credentials make it impossible to start."""
