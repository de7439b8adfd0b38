"""The sandbox's rate limiter as pure tables: the window, what counts, the limits' two written forms, reset."""

from __future__ import annotations

import random
from typing import Any

import pytest
from click.testing import CliRunner

from payapi.operations import Operation
from sandbox.cli import sandbox_command
from sandbox.faults import FaultScriptError, parse_script, too_many_requests
from sandbox.ledger import Ledger
from sandbox.ratelimit import RateLimit, RateLimiter, RateLimitError, limits_to_json, most_in_one_second, parse_limits, parse_spec
from sandbox.requestlog import RequestLog
from sandbox.state import SandboxState

CAPTURE, CANCEL, REFUND, FEEDBACK = Operation.CAPTURE, Operation.CANCEL, Operation.REFUND, Operation.FEEDBACK


def verdicts(limiter: RateLimiter, calls: list[tuple[Operation, float]]) -> str:
    """``A`` for each call accepted, ``R`` for each refused, in order."""
    return "".join("A" if limiter.admit(endpoint, now) is None else "R" for endpoint, now in calls)


# --- the window -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("per_second", "arrivals", "expected"),
    [
        # exactly R in a window are accepted, the R+1st is refused
        (3, [0.0, 0.1, 0.2, 0.3], "AAAR"),
        (1, [5.0, 5.0], "AR"),
        # the window slides: a slot frees exactly one second after the call that took it
        (2, [0.0, 0.5, 0.999, 1.0, 1.4, 1.5], "AARARA"),
        # refused calls do not count: the call at 1.0 only sees the one at 0.0, which has just left
        (1, [0.0, 0.5, 0.9, 0.99, 1.0], "ARRRA"),
        # a quiet spell empties the window
        (2, [0.0, 0.1, 0.2, 10.0, 10.0, 10.0], "AARAAR"),
        # a clock stepping backwards keeps the window full longer: stricter, never a burst
        (1, [10.0, 9.5, 10.9, 11.0], "ARRA"),
    ],
)
def test_at_most_r_accepted_calls_in_any_one_second_window(per_second: int, arrivals: list[float], expected: str) -> None:
    limiter = RateLimiter({CAPTURE: RateLimit(per_second)})
    assert verdicts(limiter, [(CAPTURE, t) for t in arrivals]) == expected


def test_a_refusal_is_the_limit_with_its_retry_after() -> None:
    limiter = RateLimiter({CAPTURE: RateLimit(1, retry_after=7)})
    assert limiter.admit(CAPTURE, 0.0) is None
    assert limiter.admit(CAPTURE, 0.1) == RateLimit(1, retry_after=7)


def test_retry_after_defaults_to_one_second() -> None:
    assert RateLimit(30).retry_after == 1
    assert parse_spec("capture=30") == (CAPTURE, RateLimit(30, 1))
    assert parse_limits({"capture": {"per_second": 30}}) == {CAPTURE: RateLimit(30, 1)}


def test_endpoints_have_independent_windows_and_an_unlimited_one_is_never_refused() -> None:
    limiter = RateLimiter({CAPTURE: RateLimit(1), FEEDBACK: RateLimit(2)})
    calls = [(CAPTURE, 0.0), (FEEDBACK, 0.0), (CAPTURE, 0.1), (FEEDBACK, 0.1), (FEEDBACK, 0.2)]
    calls += [(REFUND, 0.3)] * 100
    assert verdicts(limiter, calls) == "AARAR" + "A" * 100


def test_limits_set_mid_run_count_the_calls_already_accepted() -> None:
    limiter = RateLimiter()
    assert verdicts(limiter, [(CAPTURE, t / 10) for t in range(5)]) == "AAAAA"  # unlimited: 0.0 to 0.4
    limiter.configure({CAPTURE: RateLimit(3)})
    # at 1.0 the call at 0.0 has left, 0.1 to 0.4 are still four; at 1.25, two
    assert verdicts(limiter, [(CAPTURE, 0.5), (CAPTURE, 1.0), (CAPTURE, 1.25)]) == "RRA"


def test_clear_forgets_the_accepted_calls_but_keeps_the_limits() -> None:
    limiter = RateLimiter({CAPTURE: RateLimit(1)})
    assert verdicts(limiter, [(CAPTURE, 0.0), (CAPTURE, 0.1)]) == "AR"
    limiter.clear()
    assert verdicts(limiter, [(CAPTURE, 0.2), (CAPTURE, 0.3)]) == "AR"


def test_random_arrivals_never_put_more_than_r_in_a_window_and_every_refusal_was_needed() -> None:
    rng = random.Random(20240611)
    limiter = RateLimiter({CAPTURE: RateLimit(4)})
    now, accepted, refused = 0.0, [], []
    for _ in range(2000):
        now += rng.expovariate(20)  # about 20 calls a second against a limit of 4
        (accepted if limiter.admit(CAPTURE, now) is None else refused).append(now)
    assert most_in_one_second(accepted) == 4
    # a refused call had 4 accepted calls in the second before it, so accepting it would have made 5
    assert all(sum(1 for t in accepted if 0 <= r - t < 1.0) == 4 for r in refused)
    assert len(accepted) >= 4 * int(now) * 0.8  # and it let through about what it allows


@pytest.mark.parametrize(
    ("times", "most"),
    [([], 0), ([0.0], 1), ([0.0, 0.999, 1.0], 2), ([1.0, 0.0, 0.5, 1.4], 3), ([0.0, 1.0, 2.0, 3.0], 1)],
)
def test_most_in_one_second_counts_calls_less_than_a_second_apart(times: list[float], most: int) -> None:
    assert most_in_one_second(times) == most


def test_the_refusal_is_the_same_429_as_the_scripted_one() -> None:
    refusal = too_many_requests(2)
    scripted = parse_script({"rules": [{"sequence": ["429 Retry-After: 2"]}]}).rules[0].sequence
    assert scripted is not None and refusal == scripted[0]
    assert (refusal.status, refusal.body) == (429, b'{"errorMsg": "Too Many Requests"}')
    assert ("Retry-After", "2") in refusal.headers


# --- the command-line form --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("capture=30", (CAPTURE, RateLimit(30, 1))),
        ("feedback=30:2", (FEEDBACK, RateLimit(30, 2))),
        ("refund=1:0", (REFUND, RateLimit(1, 0))),
        ("cancel=5:600", (CANCEL, RateLimit(5, 600))),
    ],
)
def test_command_line_limits(text: str, expected: tuple[Operation, RateLimit]) -> None:
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("capture", "expected ENDPOINT=PER_SECOND[:RETRY_AFTER]"),
        ("charge=30", "unknown endpoint 'charge' (expected one of capture, cancel, refund, feedback)"),
        ("capture=0", "per_second must be a whole number, 1 or more, got 0"),
        ("capture=-3", "per_second must be a whole number, 1 or more, got '-3'"),
        ("capture=2.5", "per_second must be a whole number"),
        ("capture=", "per_second must be a whole number"),
        ("capture=3:", "retry_after must be a whole number, 0 or more"),
        ("capture=3:-1", "retry_after must be a whole number, 0 or more"),
        ("capture=3:1.5", "retry_after must be a whole number"),
    ],
)
def test_bad_command_line_limits_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(RateLimitError) as info:
        parse_spec(text)
    assert words in str(info.value)
    assert str(info.value).startswith(text)  # the message names the value it is about


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--rate-limit", "charge=30"], None, "unknown endpoint 'charge'"),
        (["--rate-limit", "capture=0"], None, "per_second must be a whole number, 1 or more"),
        (["--rate-limit", "capture=30", "--rate-limit", "capture=10"], None, "capture is given more than once"),
        ([], "capture=30 feedback=fast", "feedback=fast: per_second must be a whole number"),
    ],
)
def test_bad_rate_limit_options_are_usage_errors_naming_the_option(args: list[str], env: str | None, words: str) -> None:
    result = CliRunner().invoke(sandbox_command, ["--port", "0", *args], env={"PAYQ_SANDBOX_RATE_LIMIT": env})
    assert result.exit_code == 2
    assert "Invalid value for '--rate-limit'" in result.output
    assert words in result.output


# --- the fault-script form --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"capture": {"per_second": 30, "retry_after": 2}}, {CAPTURE: RateLimit(30, 2)}),
        ({"capture": 30, "feedback": {"per_second": 10}}, {CAPTURE: RateLimit(30), FEEDBACK: RateLimit(10)}),
        ({}, {}),
    ],
)
def test_fault_script_limits(data: dict[str, Any], expected: dict[Operation, RateLimit]) -> None:
    assert parse_script({"rate_limits": data}).rate_limits == expected


def test_a_script_without_rate_limits_says_nothing_about_them() -> None:
    assert parse_script({"rules": []}).rate_limits is None


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        ([], "rate_limits must be an object of endpoints to limits"),
        ({"charge": 1}, "rate_limits: unknown endpoint 'charge'"),
        ({"capture": {"retry_after": 2}}, "rate_limits.capture: per_second is required"),
        ({"capture": {"per_second": 0}}, "rate_limits.capture: per_second must be a whole number, 1 or more"),
        ({"capture": {"per_second": True}}, "rate_limits.capture: per_second must be a whole number"),
        ({"capture": {"per_second": 2.5}}, "rate_limits.capture: per_second must be a whole number"),
        ({"refund": {"per_second": 3, "retry_after": -1}}, "rate_limits.refund: retry_after must be a whole number, 0 or more"),
        ({"capture": {"per_second": 3, "burst": 2}}, "rate_limits.capture: unknown key(s) burst"),
        ({"capture": "fast"}, "rate_limits.capture: a limit is an object"),
    ],
)
def test_bad_fault_script_limits_name_where(limits: Any, words: str) -> None:
    with pytest.raises(FaultScriptError) as info:
        parse_script({"rules": [], "rate_limits": limits})
    assert words in str(info.value)


def test_limits_as_json_follow_the_operations_table() -> None:
    limits = {FEEDBACK: RateLimit(30, 2), CAPTURE: RateLimit(5)}
    assert limits_to_json(limits) == {
        "capture": {"per_second": 5, "retry_after": 1},
        "feedback": {"per_second": 30, "retry_after": 2},
    }
    assert parse_limits(limits_to_json(limits)) == limits  # what /admin/rate-limits shows, a script can set


# --- which limits are in force ----------------------------------------------------------------

def new_state(**limits: RateLimit) -> SandboxState:
    return SandboxState(ledger=Ledger(), log=RequestLog(10), rate_limits={Operation(k): v for k, v in limits.items()})


def test_a_script_with_limits_replaces_the_configured_ones_until_reset() -> None:
    state = new_state(capture=RateLimit(30))
    assert state.limiter.limits == {CAPTURE: RateLimit(30)}
    state.set_faults(parse_script({"rate_limits": {"refund": 1}}))
    assert state.limiter.limits == {REFUND: RateLimit(1)}  # replaced whole: capture is no longer limited
    state.reset()
    assert state.limiter.limits == {CAPTURE: RateLimit(30)}


def test_a_script_without_limits_brings_the_configured_ones_back() -> None:
    state = new_state(capture=RateLimit(30))
    state.set_faults(parse_script({"rate_limits": {}}))
    assert state.limiter.limits == {}  # an empty object turns every limit off
    state.set_faults(parse_script({"rules": [{"endpoint": "refund", "sequence": ["500"]}]}))
    assert state.limiter.limits == {CAPTURE: RateLimit(30)}


def test_reset_forgets_the_calls_counted() -> None:
    state = new_state(capture=RateLimit(1))
    assert state.limiter.admit(CAPTURE, 0.0) is None
    assert state.limiter.admit(CAPTURE, 0.1) is not None
    state.reset()
    assert state.limiter.admit(CAPTURE, 0.2) is None
