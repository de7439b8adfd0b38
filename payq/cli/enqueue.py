"""``payq enqueue``: hand payq one job from the shell, or a file of them, and print the job ids.

Same exit codes as every ``payq`` command: 0 enqueued (or enqueued before:
the same job), 2 invalid input with each problem named and nothing enqueued,
or a job whose id holds a different job (each field named with the stored and
the sent value; with ``--file`` the other lines are enqueued), 1 Redis unreachable.
"""

from __future__ import annotations

import sys
from typing import IO, Any, NoReturn

import click

from payapi import wire
from payapi.errors import InvalidRequest
from payq.cli.progress import Tally, progress
from payq.exits import EXIT_INVALID, exits_cleanly, settings_from_env
from tasks.jobs.books import TripRuleViolation
from tasks.producer import Producer, prepare
from tasks.store.records import NewJob

_BULK_CHUNK = 2000


@click.group(invoke_without_command=True)
@click.option("--file", "path", type=click.File("rb"), help="JSON lines: wire fields plus \"operation\"; '-' reads stdin.")
@click.pass_context
def enqueue(ctx: click.Context, path: IO[bytes] | None) -> None:
    """Enqueue a job and print its id (or, with --file, many: one id a line)."""
    if ctx.invoked_subcommand is not None:
        if path is not None:
            raise click.UsageError("--file goes without a subcommand: payq enqueue --file jobs.jsonl")
        return
    if path is None:
        raise click.UsageError("name an operation (capture, cancel, refund, feedback) or give --file")
    _enqueue_file(path)


def _print_id(operation: str, fields: dict[str, Any]) -> None:
    with exits_cleanly():
        job = prepare(operation, fields)  # invalid input is named before any setting is read
        click.echo(Producer(settings_from_env()).enqueue_job(job))


def _amount(value: str, currency: str) -> dict[str, Any]:
    return {"amount": value, "code": currency}


@enqueue.command("capture")
@click.option("--store-id", required=True, help="storeId")
@click.option("--trip-id", required=True, help="shoppingTripId")
@click.option("--amount", required=True, help="Cart total, e.g. 12.34 (greater than 0, at most 2 decimal places).")
@click.option("--currency", required=True, help="ISO 4217 code, e.g. USD.")
def enqueue_capture(store_id: str, trip_id: str, amount: str, currency: str) -> None:
    """Capture a trip's cart total; its payment-status report follows automatically."""
    _print_id("capture", {"storeId": store_id, "shoppingTripId": trip_id, "amount": _amount(amount, currency)})


@enqueue.command("cancel")
@click.option("--store-id", required=True, help="storeId")
@click.option("--trip-id", required=True, help="shoppingTripId")
def enqueue_cancel(store_id: str, trip_id: str) -> None:
    """Cancel an empty cart's pre-authorisation."""
    _print_id("cancel", {"storeId": store_id, "shoppingTripId": trip_id})


@enqueue.command("refund")
@click.option("--store-id", required=True, help="storeId")
@click.option("--trip-id", required=True, help="shoppingTripId")
@click.option("--amount", required=True, help="Amount to refund (greater than 0).")
@click.option("--currency", required=True, help="ISO 4217 code of the capture.")
@click.option("--reason", required=True, help="DAMAGED_ITEM, EXPIRED_ITEM, UNWANTED_ITEM, JWO_TECH_ERROR or OTHER.")
@click.option("--refund-request-id", default=None, help="Idempotency key (UUID); made for you if omitted.")
def enqueue_refund(store_id: str, trip_id: str, amount: str, currency: str, reason: str, refund_request_id: str | None) -> None:
    """Refund part or all of a captured trip (within 7 days of the trip)."""
    _print_id("refund", {
        "storeId": store_id, "shoppingTripId": trip_id, "amount": _amount(amount, currency),
        "refundReasonCode": reason, "refundRequestId": refund_request_id,
    })


@enqueue.command("feedback")
@click.option("--store-id", required=True, help="storeId")
@click.option("--trip-id", required=True, help="shoppingTripId")
@click.option("--total", required=True, help="totalAmount (at least 0).")
@click.option("--settled", required=True, help="settledAmount (at least 0).")
@click.option("--currency", required=True, help="ISO 4217 code of both amounts.")
@click.option("--time", "when", default=None, help="paymentStatusTime, epoch seconds (default now).")
def enqueue_feedback(store_id: str, trip_id: str, total: str, settled: str, currency: str, when: str | None) -> None:
    """Report a trip's payment status to fraud and abuse."""
    _print_id("feedback", {
        "storeId": store_id, "shoppingTripId": trip_id, "totalAmount": _amount(total, currency),
        "settledAmount": _amount(settled, currency), "paymentStatusTime": when,
    })


def _refuse(problems: list[str]) -> NoReturn:
    for problem in problems:
        click.echo(f"invalid: {problem}", err=True)
    click.echo(f"{len(problems)} problem(s); nothing enqueued", err=True)
    sys.exit(EXIT_INVALID)


def _enqueue_file(stream: IO[bytes]) -> None:
    """Validate every line first, then check the whole file against the trips' books; publish only if all are valid.

    One id a line on stdout, in order; on stderr a progress bar on a terminal
    (counts otherwise), each refused line with its reasons, and a summary:
    enqueued, already there, refused.
    """
    jobs: list[NewJob] = []
    lines: list[int] = []  # the line number of each job
    problems: list[str] = []
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"line {number}: (line): is not valid UTF-8 (byte {exc.start + 1})")
            continue
        if not line.strip():
            continue
        try:
            data = wire.loads_input(line)
        except wire.RepeatedKeys as exc:
            problems += [f"line {number}: {p}" for p in exc.problems]
            continue
        except RecursionError:
            problems.append(f"line {number}: (line): is not valid JSON (nested too deep)")
            continue
        except ValueError as exc:
            problems.append(f"line {number}: (line): is not valid JSON ({wire.json_error(exc)})")
            continue
        if not isinstance(data, dict):
            problems.append(f"line {number}: (line): must be a JSON object")
            continue
        operation = data.pop("operation", None)
        try:
            jobs.append(prepare(str(operation) if operation is not None else "", data))
            lines.append(number)
        except InvalidRequest as exc:
            problems += [f"line {number}: {p}" for p in exc.problems]
    if problems:
        _refuse(problems)
    with exits_cleanly():
        producer = Producer(settings_from_env())
        try:
            # the trips' rules over the whole file at once, each job seeing the lines before it
            producer.check(jobs)
        except TripRuleViolation as exc:
            _refuse([f"line {lines[b.index]}: {b.problem()}" for b in exc.breaches])
        tally = Tally()
        with progress(len(jobs), "enqueueing") as advance:
            for start in range(0, len(jobs), _BULK_CHUNK):
                done = producer.submit(jobs[start : start + _BULK_CHUNK])
                for offset, result in enumerate(done):
                    tally.add(result, lines[start + offset])
                click.echo("\n".join(result.job.job_id for result in done if not result.conflict))
                advance(len(done))
    for line in tally.refusals:
        click.echo(line, err=True)
    click.echo(tally.summary(), err=True)
    if tally.refused:
        sys.exit(EXIT_INVALID)
