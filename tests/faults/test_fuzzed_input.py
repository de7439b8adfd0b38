"""Scenario 6, fuzzed input: whatever a store backend sends, payq answers with a job id or a validation error naming the field.

Hypothesis drives the producer API, ``payq enqueue <operation>`` and
``payq enqueue --file`` (in-process with click's runner, plus a few real
subprocesses). A rejected call must leave Redis exactly as it was: its
``DEBUG DIGEST`` (a hash of every key and value) does not change.

The generated values include what once crashed the validation (fixed in
e5d72d8; each case is also pinned by a test at the end): text with lone
surrogates (a non-UTF-8 byte on a command line), integers past Python's
4,300-digit conversion limit, decimal exponents past the context's limits.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import Settings
from payapi.errors import InvalidRequest
from payapi.operations import Operation
from payq.cli import main
from tasks.producer import Producer, prepare
from tasks.redis import keys
from tests.faults.report import Figures, Recorder
from tests.support.fault_redis import FaultRedis
from tests.support.payq_cli import run_payq

OPERATIONS = [op.value for op in Operation]
USD = {"amount": "12.34", "code": "USD"}
VALID: dict[str, dict[str, Any]] = {
    "capture": {"storeId": "s1", "shoppingTripId": "t1", "amount": USD},
    "cancel": {"storeId": "s1", "shoppingTripId": "t1"},
    "refund": {"storeId": "s1", "shoppingTripId": "t1", "amount": USD, "refundReasonCode": "DAMAGED_ITEM"},
    "feedback": {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": USD, "settledAmount": USD, "paymentStatusTime": 1_700_000_000},
}
WIRE_FIELDS = {"storeId", "shoppingTripId", "amount", "refundRequestId", "refundReasonCode", "totalAmount", "settledAmount",
               "paymentStatusTime", "operation", "(body)"}
# examples per test: the producer API is cheap; each in-process payq run builds its settings and a Redis client
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_API = settings(FUZZ, max_examples=250)
FAULTS = "hypothesis: arbitrary values and types, missing and extra fields, arbitrary JSON and text lines"

# --- strategies -----------------------------------------------------------------

ids = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=12)
money_text = st.from_regex(r"\A\s?-?\d{0,14}(\.\d{0,4})?([eE][-+]?\d{1,10})?\s?\Z")
# lone surrogates (Cs) are what a non-UTF-8 byte on a command line becomes; control characters, what a paste brings
wild_text = st.text(alphabet=st.characters(categories=["Cs", "Cc", "Zs", "Lu", "Ll", "Nd", "Po", "So"]), max_size=12)
huge_ints = st.integers(min_value=10**4300, max_value=10**4400) | st.integers(min_value=-(10**4400), max_value=-(10**4300))
scalars = (st.none() | st.booleans() | st.integers() | huge_ints | st.floats() | st.decimals(places=None)
           | st.text(max_size=20) | wild_text | st.binary(max_size=6) | money_text | ids)
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                        max_leaves=6)


@st.composite
def jobs(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """An operation (mostly a real one) and its fields: a valid job with up to three fields replaced, removed or added."""
    operation = draw(st.sampled_from(OPERATIONS) | st.sampled_from(OPERATIONS) | st.sampled_from(OPERATIONS) | st.text(max_size=8))
    fields = copy.deepcopy(VALID.get(operation, VALID["capture"]))
    fields["shoppingTripId"] = draw(ids)  # a new trip most times, so an accepted job is a new job
    if operation == "refund" and draw(st.booleans()):
        fields["refundRequestId"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4))
    paths = sorted({p for key, value in fields.items() for p in ([key] + [f"{key}.{k}" for k in value] if isinstance(value, dict) else [key])})
    for path in draw(st.lists(st.sampled_from([*paths, "extra", "amount.extra"]), unique=True, max_size=3)):
        *parents, leaf = path.split(".")
        target = fields
        for parent in parents:
            target = target.setdefault(parent, {}) if isinstance(target.get(parent, {}), dict) else {}
        if draw(st.booleans()) or leaf not in target:
            target[leaf] = draw(anything)
        else:
            del target[leaf]
    return operation, fields


def as_json(value: Any) -> str:
    """JSON text of ``value``, integers of any length written out (a store backend in another language might)."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(value, default=str)
    finally:
        sys.set_int_max_str_digits(limit)


def job_lines() -> st.SearchStrategy[str]:
    """One line of a bulk file: a fuzzed job with its operation, arbitrary JSON, arbitrary text, or blank."""
    def as_line(job: tuple[str, dict[str, Any]]) -> str:
        return as_json({"operation": job[0], **job[1]})

    json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3))
    return st.one_of(jobs().map(as_line), jobs().map(as_line), json_value.map(json.dumps),
                     st.text(max_size=30).map(lambda t: t.replace("\n", " ").replace("\r", " ")), st.just(""))


# --- checks -----------------------------------------------------------------------

def digest(rdb: redis.Redis) -> str:
    """A hash of everything Redis holds."""
    return str(rdb.execute_command("DEBUG", "DIGEST"))


def field_root(field: str) -> str:
    """``amount.amount`` → ``amount``."""
    return field.split(".")[0]


def check_problems(problems: list[str], allowed: set[str]) -> None:
    """Each problem is ``field: rule`` with a field the input had or the operation knows."""
    assert problems, "a validation error names at least one problem"
    for problem in problems:
        field, sep, rule = problem.partition(": ")
        assert sep and field and rule, f"not 'field: rule': {problem!r}"
        assert field_root(field) in allowed, f"{problem!r} does not name a field of the input"


@pytest.fixture(scope="module")
def fuzz_redis() -> Iterator[FaultRedis]:
    """One private Redis for the module (hypothesis runs many examples per test), with DEBUG DIGEST allowed."""
    server = FaultRedis(extra_args=("--enable-debug-command", "local"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def cli_env(fuzz_redis: FaultRedis) -> dict[str, str]:
    """``PAYQ_*`` for in-process ``payq`` runs."""
    # patient with a Redis that a loaded machine answers slowly: these runs test the input, not Redis faults
    return {"PAYQ_REDIS_URL": fuzz_redis.url, "PAYQ_REDIS_RETRY_SECONDS": "5"}


def test_the_producer_api_answers_every_input_with_a_job_id_or_the_fields_at_fault(fuzz_redis: FaultRedis, fault_report: Recorder) -> None:
    producer = Producer(Settings(redis_url=fuzz_redis.url))
    rdb = fuzz_redis.client()
    counts = {"accepted": 0, "rejected": 0}
    started = time.monotonic()

    @FUZZ_API
    @given(job=jobs(), by_method=st.booleans())
    def enqueue(job: tuple[str, dict[str, Any]], by_method: bool) -> None:
        operation, fields = job
        before = digest(rdb)
        method = getattr(producer, f"enqueue_{operation}", None) if operation in OPERATIONS else None
        try:
            if by_method and method is not None and set(VALID[operation]) <= set(fields) <= set(VALID[operation]) | {"refundRequestId"}:
                job_id = method(**fields)  # the typed methods store backends call
            else:
                job_id = producer.enqueue(operation, fields)
        except InvalidRequest as exc:
            counts["rejected"] += 1
            check_problems([str(p) for p in exc.problems], WIRE_FIELDS | {str(k) for k in fields})
            assert digest(rdb) == before, "a rejected call wrote to Redis"
            return
        counts["accepted"] += 1
        assert isinstance(job_id, str) and job_id.startswith(f"{operation}:")
        assert rdb.exists(keys.job(job_id)), "an accepted job has its record"

    enqueue()
    record_part(fault_report, "producer API", counts, started, faults=FAULTS)


def test_payq_enqueue_answers_every_option_value_with_a_job_id_or_exit_2_naming_the_field(
    fuzz_redis: FaultRedis, cli_env: dict[str, str], fault_report: Recorder,
) -> None:
    rdb = fuzz_redis.client()
    runner = CliRunner()
    counts = {"accepted": 0, "rejected": 0}
    started = time.monotonic()
    option_value = st.one_of(st.text(max_size=16), wild_text, money_text, ids,
                             st.sampled_from(["USD", "EUR", "usd", "DAMAGED_ITEM", "0", "-1"]))
    commands = {
        "capture": ["store-id", "trip-id", "amount", "currency"],
        "cancel": ["store-id", "trip-id"],
        "refund": ["store-id", "trip-id", "amount", "currency", "reason", "refund-request-id"],
        "feedback": ["store-id", "trip-id", "total", "settled", "currency", "time"],
    }

    valid = {"store-id": st.just("s1"), "trip-id": ids, "amount": st.just("12.34"), "currency": st.just("USD"),
             "reason": st.just("DAMAGED_ITEM"), "refund-request-id": st.uuids(version=4).map(str), "total": st.just("1.00"),
             "settled": st.just("1.00"), "time": st.just("1700000000")}

    @FUZZ
    @given(operation=st.sampled_from(sorted(commands)), data=st.data())
    def enqueue(operation: str, data: st.DataObject) -> None:
        # each option valid half the time, so that whole commands are accepted too
        values = {option: data.draw(valid[option] | option_value, label=option) for option in commands[operation]
                  if option not in ("refund-request-id", "time") or data.draw(st.booleans())}
        args = ["enqueue", operation, *(f"--{option}={value}" for option, value in values.items())]
        before = digest(rdb)
        result = runner.invoke(main, args, env=cli_env)
        assert result.exception is None or isinstance(result.exception, SystemExit), f"{args}: {result.exception!r}"
        assert "Traceback" not in result.output + result.stderr
        if result.exit_code == 0:
            (job_id,) = result.stdout.split("\n")[:-1]
            assert rdb.exists(keys.job(job_id))
            counts["accepted"] += 1
            return
        assert result.exit_code == 2, (args, result.exit_code, result.stderr)
        if "Usage:" not in result.stderr:  # click's own refusal of an option value (none expected here)
            # split on newlines only: an echoed value may hold other line breaks (\x1e, \u2028) of str.splitlines
            check_problems([line.removeprefix("invalid: ") for line in result.stderr.split("\n")[:-1]], WIRE_FIELDS)
        assert digest(rdb) == before, "a rejected call wrote to Redis"
        counts["rejected"] += 1

    enqueue()
    record_part(fault_report, "payq enqueue <operation>", counts, started)


def test_payq_enqueue_file_publishes_all_lines_or_none_and_names_each_bad_line_and_field(
    fuzz_redis: FaultRedis, cli_env: dict[str, str], fault_report: Recorder,
) -> None:
    rdb = fuzz_redis.client()
    runner = CliRunner()
    counts = {"accepted": 0, "rejected": 0}
    started = time.monotonic()

    @FUZZ
    @given(lines=st.lists(job_lines(), min_size=1, max_size=6))
    def enqueue_file(lines: list[str]) -> None:
        before = digest(rdb)
        result = runner.invoke(main, ["enqueue", "--file", "-"], input="\n".join(lines) + "\n", env=cli_env)
        assert result.exception is None or isinstance(result.exception, SystemExit), f"{lines}: {result.exception!r}"
        if result.exit_code == 0:
            job_ids = result.stdout.split("\n")[:-1]
            assert len(job_ids) == sum(1 for line in lines if line.strip())
            assert all(rdb.exists(keys.job(j)) for j in job_ids)
            counts["accepted"] += 1
            return
        assert result.exit_code == 2, (lines, result.exit_code, result.stderr)
        *problems, summary = result.stderr.split("\n")[:-1]
        assert summary.endswith("problem(s); nothing enqueued") and int(summary.split()[0]) == len(problems)
        for problem in problems:
            where, _, rest = problem.removeprefix("invalid: ").partition(": ")
            assert where.startswith("line ") and 1 <= int(where[5:]) <= len(lines), problem
            check_problems([rest], WIRE_FIELDS | {"(line)"} | {k for line in lines for k in _keys(line)})
        assert result.stdout == ""
        assert digest(rdb) == before, "a rejected file wrote to Redis"
        counts["rejected"] += 1

    enqueue_file()
    record_part(fault_report, "payq enqueue --file", counts, started, unit="files")


def _keys(line: str) -> set[str]:
    try:
        data = json.loads(line, parse_int=str)  # an integer of any length: payq reads the line whole, and names its keys
    except ValueError:
        return set()
    return {str(k) for k in data} if isinstance(data, dict) else set()


def record_part(recorder: Recorder, what: str, counts: dict[str, int], started: float, *, unit: str = "calls",
                faults: str = "", notes: str = "") -> None:
    """This test's share of scenario 6's line."""
    recorder.add(Figures(
        scenario=6, title="fuzzed input", jobs=counts["accepted"] + counts["rejected"],
        jobs_detail=f"{what}: {counts['accepted']} {unit} accepted, {counts['rejected']} rejected naming the field, Redis untouched",
        faults=faults, lost=0, duplicates=0, notes=notes, seconds=time.monotonic() - started,
    ))


def payq(redis_url: str, cwd: Path, *args: str | bytes, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The real console script, as a store backend runs it."""
    return run_payq(redis_url, *args, cwd=cwd, stdin=stdin, text=False)


def test_the_real_payq_command_answers_with_a_job_id_or_exit_2_and_never_a_traceback(
    fuzz_redis: FaultRedis, tmp_path: Path, fault_report: Recorder,
) -> None:
    rdb = fuzz_redis.client()
    started = time.monotonic()
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text(json.dumps({"operation": "cancel", "storeId": "s1", "shoppingTripId": "t-file-ok"}) + "\n"
                         + json.dumps({"operation": "capture", "storeId": "s1", "shoppingTripId": "t-file-bad",
                                       "amount": {"amount": "1.50", "code": "usd"}}) + "\n")
    runs = [
        (("enqueue", "capture", "--store-id", "s1", "--trip-id", "t-sub", "--amount", "19.99", "--currency", "USD"), 0, ""),
        (("enqueue", "capture", "--store-id", "s1", "--trip-id", "t-sub2", "--amount", "1.001", "--currency", "USD"), 2,
         "invalid: amount.amount: must have at most 2 decimal places"),
        (("enqueue", "refund", "--store-id", "s 1", "--trip-id", "t", "--amount", "0", "--currency", "USD", "--reason", "BROKEN",
          "--refund-request-id", "nope"), 2, "invalid: storeId: "),
        (("enqueue", "feedback", "--store-id", "s1", "--trip-id", "t", "--total", "1", "--settled", "2", "--currency", "USD",
          "--time", "yesterday"), 2, "invalid: paymentStatusTime: "),
        (("enqueue", "--file", str(jobs_file)), 2, "invalid: line 2: amount.code: must match ^[A-Z]{3}$"),
    ]
    for args, code, expected in runs:
        before = digest(rdb)
        ran = payq(fuzz_redis.url, tmp_path, *args)
        stderr = ran.stderr.decode()
        assert ran.returncode == code, stderr
        assert b"Traceback" not in ran.stderr
        if code == 2:
            assert expected in stderr and ran.stdout == b"" and digest(rdb) == before
        else:
            assert rdb.exists(keys.job(ran.stdout.decode().strip()))
    assert "line 1" not in payq(fuzz_redis.url, tmp_path, "enqueue", "--file", str(jobs_file)).stderr.decode()

    record_part(fault_report, "real payq processes", {"accepted": 2, "rejected": 4}, started,
                notes="5 inputs that crashed before e5d72d8 kept as regression tests")


# --- inputs that crashed the validation until e5d72d8 (found by this suite) ----------

def _rejected_naming(operation: str, fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        prepare(operation, fields)
    assert [p.field for p in caught.value.problems] == [field]
    str(caught.value)  # and it can be shown


def test_an_amount_that_is_not_valid_unicode_is_a_validation_error(fuzz_redis: FaultRedis, tmp_path: Path) -> None:
    _rejected_naming("capture", {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "1\udcff", "code": "USD"}},
                     "amount.amount")
    # the same from a command line: the byte 0xff reaches Python as the lone surrogate \udcff
    ran = payq(fuzz_redis.url, tmp_path, "enqueue", "capture", "--store-id", "s1", "--trip-id", "t1", "--amount", b"1\xff",
               "--currency", "USD")
    assert (ran.returncode, b"Traceback" in ran.stderr) == (2, False), ran.stderr.decode(errors="replace")[-300:]
    assert ran.stderr.decode().startswith("invalid: amount.amount: must be digits with at most one decimal point")


def test_an_amount_with_a_huge_exponent_is_a_validation_error() -> None:
    _rejected_naming("capture", {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "1e999999999", "code": "USD"}},
                     "amount.amount")


def test_a_payment_status_time_past_any_date_is_a_validation_error() -> None:
    _rejected_naming("feedback", {**VALID["feedback"], "paymentStatusTime": 10**5000}, "paymentStatusTime")


def test_a_bulk_file_line_that_is_not_utf8_is_a_validation_error(fuzz_redis: FaultRedis, tmp_path: Path) -> None:
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_bytes(b'{"operation": "cancel", "storeId": "s1", "shoppingTripId": "t1"}\n'
                          b'{"operation": "cancel", "storeId": "s1", "shoppingTripId": "t\xff"}\n')
    ran = payq(fuzz_redis.url, tmp_path, "enqueue", "--file", str(jobs_file))
    assert (ran.returncode, b"Traceback" in ran.stderr) == (2, False), ran.stderr.decode(errors="replace")[-300:]
    assert ran.stderr.decode().startswith("invalid: line 2: ")


def test_a_bulk_file_line_nested_too_deep_is_a_validation_error(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["enqueue", "--file", "-"], input="[" * 100_000 + "\n", env=cli_env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2 and result.stderr.startswith("invalid: line 1: (line): ")

