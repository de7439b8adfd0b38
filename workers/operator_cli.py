"""Operator commands: ``payq dlq …``, ``payq job``, ``payq stats``, ``payq metrics``."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from payapi.errors import FieldProblem, InvalidRequest
from payapi.outcomes import OPERATIONS
from workers.cli_support import exits_cleanly, runtime_from_env
from workers.deadletters import REASONS, DeadLetter
from workers.redis_conn import with_retry
from workers.stats import collect

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str, option: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h``, ``7d`` or ``1w``."""
    match = _DURATION.match(value)
    if not match:
        raise InvalidRequest([FieldProblem(option, f"must be a duration like 90s, 15m, 2h or 7d, got {value!r}")])
    return float(match.group(1)) * _UNITS[match.group(2)]


def _age(epoch: float | None, now: float) -> str:
    if epoch is None:
        return "-"
    seconds = max(0.0, now - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _iso(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _filter_options(func: Any) -> Any:
    for option in reversed([
        click.option("--operation", type=click.Choice(OPERATIONS), help="Only this operation."),
        click.option("--store-id", help="Only this storeId."),
        click.option("--reason", type=click.Choice(REASONS), help="Only this dead-letter reason."),
        click.option("--since", help="Only entries dead-lettered within this long, e.g. 2h or 7d."),
    ]):
        func = option(func)
    return func


def _select(operation: str | None, store_id: str | None, reason: str | None, since: str | None,
            older_than: str | None = None) -> list[DeadLetter]:
    rt = runtime_from_env()
    now = time.time()
    return with_retry(rt.settings, lambda: rt.dead_letters.list(
        operation=operation, store_id=store_id, reason=reason,
        since=now - parse_duration(since, "--since") if since else None,
        older_than=now - parse_duration(older_than, "--older-than") if older_than else None,
    ))


def register_operator_commands(main: click.Group) -> None:
    """Attach the operator commands to the ``payq`` group."""
    main.add_command(dlq)
    main.add_command(job)
    main.add_command(stats)


@click.group()
def dlq() -> None:
    """Inspect, replay and purge dead-lettered jobs."""


@dlq.command("list")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def dlq_list(operation: str | None, store_id: str | None, reason: str | None, since: str | None, as_json: bool) -> None:
    """Dead letters, newest first."""
    with exits_cleanly():
        entries = _select(operation, store_id, reason, since)
        if as_json:
            click.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
            return
        now = time.time()
        click.echo(f"{'ID':<48} {'OPERATION':<9} {'STORE':<14} {'TRIP':<24} {'REASON':<18} {'STATUS':<6} {'ATT':>3} {'AGE':>5}")
        for e in entries:
            click.echo(
                f"{e.id:<48} {e.operation:<9} {e.store_id[:14]:<14} {e.trip_id[:24]:<24} {e.reason:<18} "
                f"{e.status if e.status is not None else '-':<6} {e.attempts:>3} {_age(e.dead_at, now):>5}"
            )
        click.echo(f"{len(entries)} dead letter(s)", err=True)


@dlq.command("show")
@click.argument("entry_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dlq_show(entry_id: str, as_json: bool) -> None:
    """Everything stored for one dead letter, with its replay history."""
    with exits_cleanly():
        rt = runtime_from_env()
        entry = with_retry(rt.settings, lambda: rt.dead_letters.get(entry_id))
        if entry is None:
            raise InvalidRequest([FieldProblem("ID", f"no dead letter {entry_id!r}")])
        if as_json:
            click.echo(json.dumps(entry.model_dump(mode="json"), indent=2))
            return
        for name, value in entry.model_dump(mode="json").items():
            if name in ("first_attempt_at", "last_attempt_at", "dead_at"):
                value = _iso(value)
            if name == "kwargs":
                value = json.dumps(value)
            if name == "history":
                continue
            click.echo(f"{name + ':':<18} {value}")
        click.echo(f"{'history:':<18} {len(entry.history)} replay(s)")
        for item in entry.history:
            click.echo(f"  - replayed {_iso(item.get('replayed_at'))} by {item.get('by')} after {item.get('reason')}: {item.get('error')}")


@dlq.command("replay")
@click.argument("entry_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every entry matching the filters.")
@_filter_options
@click.option("--dry-run", is_flag=True, help="Print what would be replayed; change nothing.")
def dlq_replay(entry_ids: tuple[str, ...], replay_all: bool, operation: str | None, store_id: str | None,
               reason: str | None, since: str | None, dry_run: bool) -> None:
    """Put jobs back on their queues: same job id, same idempotency key, attempts reset."""
    with exits_cleanly():
        ids = _chosen(entry_ids, replay_all, operation, store_id, reason, since)
        rt = runtime_from_env()
        if dry_run:
            for entry_id in ids:
                click.echo(f"would replay {entry_id}")
            click.echo(f"{len(ids)} to replay (dry run)", err=True)
            return
        replayed = 0
        with click.progressbar(ids, label="replaying", file=sys.stderr) as bar:
            for entry_id in bar:
                if with_retry(rt.settings, lambda entry_id=entry_id: rt.dead_letters.replay(entry_id, by="payq dlq replay")):
                    replayed += 1
                    click.echo(f"replayed {entry_id}")
        click.echo(f"replayed {replayed}; {len(ids) - replayed} already replayed or gone", err=True)


@dlq.command("purge")
@click.argument("entry_ids", nargs=-1)
@click.option("--all", "purge_all", is_flag=True, help="Purge every entry (matching --older-than).")
@click.option("--older-than", help="Only entries dead-lettered longer ago than this, e.g. 30d.")
@click.option("--yes", is_flag=True, help="Confirm: purged entries cannot be replayed.")
def dlq_purge(entry_ids: tuple[str, ...], purge_all: bool, older_than: str | None, yes: bool) -> None:
    """Delete dead letters for good."""
    with exits_cleanly():
        if not yes:
            raise InvalidRequest([FieldProblem("--yes", "is required: purged entries cannot be replayed")])
        if entry_ids and (purge_all or older_than):
            raise InvalidRequest([FieldProblem("ID", "give IDs or --all [--older-than], not both")])
        if not entry_ids and not purge_all:
            raise InvalidRequest([FieldProblem("ID", "give one or more IDs, or --all")])
        rt = runtime_from_env()
        ids = list(entry_ids) or [e.id for e in _select(None, None, None, None, older_than)]
        purged = with_retry(rt.settings, lambda: rt.dead_letters.purge(ids))
        click.echo(f"purged {purged}")


def _chosen(entry_ids: tuple[str, ...], every: bool, operation: str | None, store_id: str | None,
            reason: str | None, since: str | None) -> list[str]:
    filtered = any(v is not None for v in (operation, store_id, reason, since))
    if entry_ids and (every or filtered):
        raise InvalidRequest([FieldProblem("ID", "give IDs or --all with filters, not both")])
    if not entry_ids and not every:
        raise InvalidRequest([FieldProblem("ID", "give one or more IDs, or --all")])
    if entry_ids:
        return list(entry_ids)
    return [e.id for e in _select(operation, store_id, reason, since)]


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def job(job_id: str, as_json: bool) -> None:
    """A job's state, attempts, last outcome and result (and a capture's chained report)."""
    with exits_cleanly():
        rt = runtime_from_env()
        record = with_retry(rt.settings, lambda: rt.jobs.get(job_id))
        if record is None:
            raise InvalidRequest([FieldProblem("ID", f"no job {job_id!r} (never enqueued, or past its retention)")])
        view = _job_view(job_id, record)
        if as_json:
            click.echo(json.dumps(view, indent=2))
            return
        for name, value in view.items():
            if value is None:
                continue
            click.echo(f"{name + ':':<16} {json.dumps(value) if isinstance(value, dict) else value}")


def _job_view(job_id: str, record: dict[str, str]) -> dict[str, Any]:
    state = record.get("state", "queued")
    result = json.loads(record["result"]) if "result" in record else None

    def when(name: str) -> str | None:
        return _iso(float(record[name])) if name in record else None

    return {
        "id": job_id,
        "operation": record.get("op"),
        "state": {"dead": "dead-lettered"}.get(state, state),
        "deferred_until": when("deferred_until") if state == "deferred" else None,
        "why": record.get("reason") if state in ("deferred", "dead") else None,
        "attempts": int(record.get("attempts", 0)),
        "replays": int(record.get("replays", 0)),
        "last_outcome": record.get("outcome"),
        "result": result,
        "report_job_id": result.get("reportJobId") if isinstance(result, dict) else None,
        "enqueued_at": when("enqueued_at"),
        "updated_at": when("updated_at"),
        "kwargs": json.loads(record["kwargs"]) if "kwargs" in record else None,
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(as_json: bool) -> None:
    """Queue depths, deferred jobs, dead letters by reason, active endpoint pauses."""
    with exits_cleanly():
        rt = runtime_from_env()
        snapshot = with_retry(rt.settings, lambda: collect(rt.redis, rt.jobs, rt.dead_letters))
        if as_json:
            click.echo(json.dumps(snapshot.as_dict(), indent=2))
            return
        click.echo("queues:")
        for queue, depth in snapshot.queues.items():
            click.echo(f"  {queue:<20} {depth}")
        click.echo(f"in flight (unacked): {snapshot.unacked}")
        click.echo(f"deferred: {snapshot.deferred}" + (f", next due {_iso(snapshot.deferred_next_due)}" if snapshot.deferred_next_due else ""))
        click.echo("dead letters: " + (", ".join(f"{r} {n}" for r, n in sorted(snapshot.dead_letters.items())) or "none"))
        click.echo("endpoint pauses: " + (", ".join(f"{op} until {_iso(u)}" for op, u in snapshot.pauses.items()) or "none"))
