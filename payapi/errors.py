"""payq's exceptions: one root, two branches.

    PayqError
    ├── RetryableError          the same thing may work later
    │   ├── BrokerUnavailable   Redis did not answer
    │   ├── NotReplicated       a write reached the primary but not enough replicas in time
    │   └── Deferred            a job waits in the deferred set (Flower shows it as RETRY)
    └── PermanentError          trying again cannot help
        ├── InvalidRequest      input broke a rule; names each field and rule
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
