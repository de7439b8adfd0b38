"""payq's exceptions: one root, two branches, and every one survives Celery's pickling intact.

Celery pickles a task's exception into its result and its events; a class
that cannot be rebuilt from its pickle turns a clear error into an opaque one.
"""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest
from celery.utils.serialization import get_pickleable_exception

from payapi import errors
from payapi.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DeadLettered,
    Deferred,
    FieldDifference,
    FieldProblem,
    InvalidRequest,
    JobConflict,
    NotReplicated,
    PayqError,
    PermanentError,
    RedisFull,
    RetryableError,
)

EXAMPLES = [
    pytest.param(PayqError("something payq-specific"), id="PayqError"),
    pytest.param(RetryableError("try again later"), id="RetryableError"),
    pytest.param(PermanentError("never going to work"), id="PermanentError"),
    pytest.param(BrokerUnavailable("cannot reach Redis at redis://:***@redis:6379/0: Connection refused"), id="BrokerUnavailable"),
    pytest.param(NotReplicated("only 0 of 1 Redis replica(s) confirmed the write within 1 s"), id="NotReplicated"),
    pytest.param(RedisFull("Redis is full (maxmemory reached); nothing was written"), id="RedisFull"),
    pytest.param(Deferred("retry-after", 1735732800.25, "HTTP 429 Too Many Requests; retry after 60s"), id="Deferred"),
    pytest.param(
        InvalidRequest([FieldProblem("storeId", "must not be empty"), FieldProblem("amount.amount", "must be greater than 0")]),
        id="InvalidRequest",
    ),
    pytest.param(JobConflict([FieldDifference("capture:s1:t1", "amount.amount", "19.99", "99")]), id="JobConflict"),
    pytest.param(DeadLettered("permanent", "HTTP 400 Bad Request: UnknownShoppingTrip", status=400), id="DeadLettered-with-status"),
    pytest.param(DeadLettered("retries-exhausted", "connection failed"), id="DeadLettered-without-status"),
    pytest.param(ConfigurationError("PAYQ_AWS_REGION is required when PAYQ_API_AUTH=sigv4"), id="ConfigurationError"),
]
ALL_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
]


def assert_same_error(copied: BaseException, original: BaseException) -> None:
    assert type(copied) is type(original)
    assert str(copied) == str(original)
    assert copied.args == original.args
    assert copied.__dict__ == original.__dict__


# --- pickling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("error", EXAMPLES)
def test_every_error_survives_a_pickle_round_trip_with_its_attributes(error: PayqError, protocol: int) -> None:
    assert_same_error(pickle.loads(pickle.dumps(error, protocol=protocol)), error)


@pytest.mark.parametrize("error", EXAMPLES)
def test_every_error_survives_a_deep_copy(error: PayqError) -> None:
    assert_same_error(copy.deepcopy(error), error)


@pytest.mark.parametrize("error", EXAMPLES)
def test_celery_stores_the_error_itself_not_an_unpickleable_wrapper(error: PayqError) -> None:
    assert get_pickleable_exception(error) is error


def test_every_error_class_in_the_module_has_a_pickled_example() -> None:
    covered = {type(param.values[0]) for param in EXAMPLES}

    assert set(ALL_CLASSES) == covered


def test_deferred_keeps_its_cause_time_and_description_and_says_when_it_runs() -> None:
    error = pickle.loads(pickle.dumps(Deferred("retry-after", 1735732800.25, "HTTP 503 Service Unavailable; retry after 2s")))

    assert (error.cause, error.until, error.description) == ("retry-after", 1735732800.25, "HTTP 503 Service Unavailable; retry after 2s")
    assert str(error) == "HTTP 503 Service Unavailable; retry after 2s; runs again at 1735732800.250"


def test_invalid_request_keeps_each_field_problem() -> None:
    problems = [FieldProblem("storeId", "must not be empty"), FieldProblem("amount.code", "must match ^[A-Z]{3}$")]

    error = pickle.loads(pickle.dumps(InvalidRequest(problems)))

    assert error.problems == problems
    assert all(isinstance(p, FieldProblem) for p in error.problems)
    assert str(error) == "storeId: must not be empty; amount.code: must match ^[A-Z]{3}$"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(DeadLettered("permanent", "HTTP 400 Bad Request: UnknownShoppingTrip", status=400),
                     "permanent: HTTP 400 Bad Request: UnknownShoppingTrip", id="with-status"),
        pytest.param(DeadLettered("retries-exhausted", "timeout: ReadTimeout"), "retries-exhausted: timeout: ReadTimeout", id="without-status"),
    ],
)
def test_dead_lettered_keeps_reason_description_and_status(error: DeadLettered, message: str) -> None:
    copied = pickle.loads(pickle.dumps(error))

    assert (copied.reason, copied.description, copied.status) == (error.reason, error.description, error.status)
    assert str(copied) == message


def test_an_unpickled_error_is_still_caught_by_its_branch() -> None:
    try:
        try:
            raise ConnectionRefusedError("refused")
        except ConnectionRefusedError as cause:
            raise BrokerUnavailable("cannot reach Redis") from cause
    except BrokerUnavailable as raised:
        copied = pickle.loads(pickle.dumps(raised))

    with pytest.raises(RetryableError, match="cannot reach Redis"):
        raise copied


# --- hierarchy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "branch"),
    [
        pytest.param(BrokerUnavailable, RetryableError, id="BrokerUnavailable-is-retryable"),
        pytest.param(NotReplicated, RetryableError, id="NotReplicated-is-retryable"),
        pytest.param(RedisFull, RetryableError, id="RedisFull-is-retryable"),
        pytest.param(Deferred, RetryableError, id="Deferred-is-retryable"),
        pytest.param(InvalidRequest, PermanentError, id="InvalidRequest-is-permanent"),
        pytest.param(DeadLettered, PermanentError, id="DeadLettered-is-permanent"),
        pytest.param(ConfigurationError, PermanentError, id="ConfigurationError-is-permanent"),
    ],
)
def test_each_error_sits_on_exactly_one_branch(cls: type[PayqError], branch: type[PayqError]) -> None:
    other = PermanentError if branch is RetryableError else RetryableError

    assert issubclass(cls, branch)
    assert not issubclass(cls, other)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_is_a_payq_error_with_a_docstring(cls: type[BaseException]) -> None:
    assert issubclass(cls, PayqError)
    assert issubclass(cls, Exception)
    assert cls.__doc__ and cls.__doc__.strip()


def test_the_two_branches_are_disjoint() -> None:
    assert not issubclass(RetryableError, PermanentError)
    assert not issubclass(PermanentError, RetryableError)


def test_field_problem_reads_as_field_colon_rule() -> None:
    assert str(FieldProblem("amount.amount", "must be greater than 0")) == "amount.amount: must be greater than 0"
