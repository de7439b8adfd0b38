"""Operator commands: ``payq dlq …``, ``payq job``, ``payq stats``.

Same exit codes as every ``payq`` command (:mod:`payq.exits`): 0 done,
2 invalid input (a bad option, an unknown id: nothing was changed), 1 a system
fault such as Redis unreachable, with one line naming the cause.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import click

from payapi.errors import FieldProblem, InvalidRequest
from payapi.operations import Operation
from payq.durations import age, parse_duration
from payq.exits import EXIT_INVALID, exits_cleanly, stores_from_env
from payq.views import dead_letter_view, iso, job_view, memory_lines, read_trip, retention_of, stats_view, subject_of
from tasks.jobs.deferral import failure_from
from tasks.redis.connection import with_retry
from tasks.redis.replicas import ReplicaState
from tasks.states import DeadLetterReason, JobState
from tasks.stats import collect
from tasks.store.deadletters import DeadLetter, Replayed
from tasks.stores import Stores

T = TypeVar("T")
_REPLAY_CHUNK = 200  # entries per pipelined round trip; also how often the progress bar moves


def _redis(rt: Stores, action: Callable[[], T]) -> T:
    """Run one Redis read or write with the short bounded retry; unreachable → exit 1 via ``exits_cleanly``."""
    return with_retry(rt.settings, action)


def who(command: str = "payq dlq replay") -> str:
    """Who is acting, and with which command: for a replay's history, or the endpoint log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = "unknown"
    return f"{user}@{socket.gethostname()} ({command})"


# --- dead letters -----------------------------------------------------------

class _Filters:
    """The shared ``--operation/--store-id/--reason/--since`` options, parsed before touching Redis."""

    def __init__(self, operation: str | None, store_id: str | None, reason: str | None, since: str | None) -> None:
        self.operation = operation
        self.store_id = store_id
        self.reason = reason
        self.since = parse_duration(since, "--since") if since is not None else None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.operation, self.store_id, self.reason, self.since))

    def select(self, rt: Stores, older_than: float | None = None) -> list[DeadLetter]:
        now = time.time()
        return _redis(rt, lambda: rt.dead_letters.list(
            operation=self.operation, store_id=self.store_id, reason=self.reason,
            since=now - self.since if self.since is not None else None,
            older_than=now - older_than if older_than is not None else None,
        ))


def _filter_options(func: Any) -> Any:
    for option in reversed([
        click.option("--operation", type=click.Choice([op.value for op in Operation]), help="Only this operation."),
        click.option("--store-id", help="Only this storeId."),
        click.option("--reason", type=click.Choice([r.value for r in DeadLetterReason]), help="Only this dead-letter reason."),
        click.option("--since", help="Only entries dead-lettered within this long, e.g. 2h or 7d."),
    ]):
        func = option(func)
    return func


def _existing(rt: Stores, entry_ids: tuple[str, ...]) -> list[DeadLetter]:
    """The entries for explicit ids, in the order given; any unknown id is invalid input and nothing is done."""
    unique = list(dict.fromkeys(entry_ids))
    found = _redis(rt, lambda: [rt.dead_letters.get(i) for i in unique])
    missing = [i for i, e in zip(unique, found, strict=True) if e is None]
    if missing:
        raise InvalidRequest([FieldProblem("ID", f"no dead letter {i!r} (never dead-lettered, or already replayed or purged)") for i in missing])
    return [e for e in found if e is not None]


def _describe(e: DeadLetter) -> str:
    return f"{e.id} ({e.operation}, {e.reason}, {subject_of(e.kwargs).describe()})"


def _history_failure(item: dict[str, Any]) -> str:
    failure = failure_from(item.get("failure"))
    return failure.describe() if failure is not None else str(item.get("error", "-"))


@click.group()
def dlq() -> None:
    """Inspect, replay and purge dead-lettered jobs."""


@dlq.command("list")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def dlq_list(operation: str | None, store_id: str | None, reason: str | None, since: str | None, as_json: bool) -> None:
    """Dead letters, newest first: id, operation, store, trip, reason, HTTP status, attempts, age."""
    with exits_cleanly():
        filters = _Filters(operation, store_id, reason, since)
        entries = filters.select(stores_from_env())
        if as_json:
            click.echo(json.dumps([dead_letter_view(e) for e in entries], indent=2))
            return
        now = time.time()
        click.echo(f"{'ID':<48} {'OPERATION':<9} {'STORE':<14} {'TRIP':<24} {'REASON':<18} {'STATUS':<6} {'ATT':>3} {'AGE':>5}")
        for e in entries:
            about = subject_of(e.kwargs)  # a notification's are those of the job it tells of
            click.echo(
                f"{e.id:<48} {e.operation:<9} {about.store[:14]:<14} {about.trip[:24]:<24} {e.reason:<18} "
                f"{e.status if e.status is not None else '-':<6} {e.attempts:>3} {age(e.dead_at, now):>5}"
            )
        click.echo(f"{len(entries)} dead letter(s)", err=True)


@dlq.command("show")
@click.argument("entry_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dlq_show(entry_id: str, as_json: bool) -> None:
    """Everything stored for one dead letter, with its history of replays."""
    with exits_cleanly():
        entry = _existing(stores_from_env(), (entry_id,))[0]
        if as_json:
            click.echo(json.dumps(dead_letter_view(entry), indent=2))
            return
        for name, value in entry.model_dump(mode="json").items():
            if name in ("first_attempt_at", "last_attempt_at", "dead_at"):
                value = iso(value) or "-"
            elif name == "kwargs":
                value = json.dumps(value)
            elif name == "history":
                continue
            click.echo(f"{name + ':':<18} {'-' if value is None else value}")
        click.echo(f"{'history:':<18} {len(entry.history)} earlier replay(s)")
        for item in entry.history:
            click.echo(f"  - {iso(item.get('replayed_at'))} by {item.get('by')}, after {item.get('reason')} "
                       f"({item.get('attempts')} attempt(s)): {_history_failure(item)}")


@dlq.command("replay")
@click.argument("entry_ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "replay_all", is_flag=True, help="Replay every entry matching the filters.")
@_filter_options
@click.option("--dry-run", is_flag=True, help="Print what would be replayed; change nothing.")
def dlq_replay(entry_ids: tuple[str, ...], replay_all: bool, operation: str | None, store_id: str | None,
               reason: str | None, since: str | None, dry_run: bool) -> None:
    """Put jobs back on their queues: same job id, same idempotency key, attempts reset.

    Each entry is removed in the same atomic step that publishes it, so a
    publish that fails keeps the entry, and operators replaying at once
    replay each entry once. A replayed job that fails again comes back here
    with its replay count and history. A refund whose trip has no room left
    to refund it (other refunds were made meanwhile) is not replayed: it is
    named on stderr, stays in the store, and the command exits 2.
    """
    with exits_cleanly():
        filters = _Filters(operation, store_id, reason, since)
        if entry_ids and (replay_all or filters.given):
            raise InvalidRequest([FieldProblem("ID", "give IDs, or --all with filters, not both")])
        if not entry_ids and not replay_all:
            raise InvalidRequest([FieldProblem("ID", "give one or more IDs, or --all")])
        rt = stores_from_env()
        entries = _existing(rt, entry_ids) if entry_ids else filters.select(rt)
        if dry_run:
            for e in entries:
                click.echo(f"would replay {_describe(e)}")
            click.echo(f"{len(entries)} would be replayed (dry run: nothing changed)", err=True)
            return
        by = who()
        outcomes: Counter[Replayed] = Counter()
        with click.progressbar(length=len(entries), label="replaying", file=sys.stderr) as bar:
            for start in range(0, len(entries), _REPLAY_CHUNK):
                chunk = entries[start : start + _REPLAY_CHUNK]
                # A retry after a lost reply finds the entries it already replayed gone and skips
                # them: they are then reported as "gone" below, but never published twice.
                done = _redis(rt, lambda chunk=chunk: rt.dead_letters.replay_entries(chunk, by))  # type: ignore[misc]
                for e, result in zip(chunk, done, strict=True):
                    outcomes[result] += 1
                    if result is Replayed.REPLAYED:
                        click.echo(f"replayed {_describe(e)}")
                    elif result is Replayed.OVER_REFUND:
                        click.echo(f"not replayed: {_describe(e)}: its trip has no room left to refund it", err=True)
                bar.update(len(chunk))
        replayed, refused = outcomes[Replayed.REPLAYED], outcomes[Replayed.OVER_REFUND]
        gone = len(entries) - replayed - refused
        click.echo(f"replayed {replayed} of {len(entries)}" + (f"; {gone} already replayed or purged by someone else" if gone else "")
                   + (f"; {refused} refund(s) not replayed: they would exceed the captured amount" if refused else ""), err=True)
        if refused:
            sys.exit(EXIT_INVALID)


@dlq.command("purge")
@click.argument("entry_ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "purge_all", is_flag=True, help="Purge every entry (only those older than --older-than, if given).")
@click.option("--older-than", help="With --all: only entries dead-lettered longer ago than this, e.g. 30d.")
@click.option("--yes", is_flag=True, help="Confirm: purged entries cannot be replayed.")
def dlq_purge(entry_ids: tuple[str, ...], purge_all: bool, older_than: str | None, yes: bool) -> None:
    """Delete dead letters for good, and say how many."""
    with exits_cleanly():
        age = parse_duration(older_than, "--older-than") if older_than is not None else None
        if entry_ids and (purge_all or age is not None):
            raise InvalidRequest([FieldProblem("ID", "give IDs, or --all [--older-than], not both")])
        if not entry_ids and not purge_all:
            raise InvalidRequest([FieldProblem("ID", "give one or more IDs, or --all")])
        if not yes:
            raise InvalidRequest([FieldProblem("--yes", "is required: purged entries cannot be replayed")])
        rt = stores_from_env()
        if entry_ids:
            ids = [e.id for e in _existing(rt, entry_ids)]
            purged = _redis(rt, lambda: rt.dead_letters.purge(ids))
        else:
            cutoff = time.time() - age if age is not None else None
            ids = [e.id for e in _Filters(None, None, None, None).select(rt, older_than=age)]
            # the store checks the age again as it deletes: an entry dead-lettered anew meanwhile stays
            purged = _redis(rt, lambda: rt.dead_letters.purge(ids, dead_before=cutoff))
        click.echo(f"purged {purged} dead letter(s)")


# --- jobs and stats -----------------------------------------------------------

@click.command()
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def job(job_id: str, as_json: bool) -> None:
    """A job's state, attempts, last outcome and result.

    State is queued, running, deferred (until when, and why), succeeded or
    dead-lettered; the result holds e.g. a refund's reconciliationId, and a
    capture's names its payment-status report's job id. ``deferrals`` lists
    why the job waited before (the latest 20). A running job shows its holder
    (a worker process) and when its lease ends unless the holder renews it;
    ``recoveries``, how often it was given back from a holder whose lease lapsed.
    """
    with exits_cleanly():
        rt = stores_from_env()
        record, in_dlq, deferrals, lease = _redis(
            rt, lambda: (rt.jobs.get(job_id), rt.dead_letters.get(job_id) is not None, rt.jobs.deferrals(job_id),
                         rt.leases.lease_of(job_id)),
        )
        if record is None:
            raise InvalidRequest([FieldProblem("ID", f"no job {job_id!r} (never enqueued, or past its retention)")])
        view = job_view(job_id, record, in_dlq, deferrals, lease)
        if as_json:
            click.echo(json.dumps(view, indent=2))
            return
        state = view["state"]
        if state == "waiting":
            state = f"waiting (a refund held until its trip's capture succeeds: {view['why']})"
        elif state == "deferred":
            state = f"deferred until {view['deferredUntil']}: {view['why']}"
        elif state == "dead-lettered":
            where = "see payq dlq show " + job_id if in_dlq else "its entry was purged"
            state = f"dead-lettered ({view['why']}; {where})"
        click.echo(f"{'state:':<16} {state}")
        for name, value in view.items():
            if value is not None and name not in ("state", "deferredUntil", "why", "deadLetter", "deferrals"):
                click.echo(f"{name + ':':<16} {json.dumps(value) if isinstance(value, dict) else value}")
        if view["worker"] is None and state == JobState.SUCCEEDED:
            # a settled record keeps its outcome, not who ran it: ~32 bytes a record (docs/scaling.md)
            where = f"trace {view['traceId']} and " if view.get("traceId") else ""
            click.echo(f"{'worker:':<16} not kept once settled (the {where}workers' logs name it)")
        if view["deferrals"]:
            click.echo(f"{'deferrals:':<16} {len(view['deferrals'])}")
            for item in view["deferrals"]:
                click.echo(f"  - {item['at']} {item['why']}")


@click.command()
@click.argument("store_id", metavar="STORE_ID")
@click.argument("trip_id", metavar="TRIP_ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def trip(store_id: str, trip_id: str, as_json: bool) -> None:
    """A shopping trip's history: its capture or cancel, refunds, payment-status report and dead letters.

    With the amounts captured, refunded, on their way (refunding) and still
    refundable, in the capture's currency.
    """
    with exits_cleanly():
        rt = stores_from_env()
        view = _redis(rt, lambda: read_trip(rt.jobs, rt.dead_letters, store_id, trip_id))
        if view is None:
            raise InvalidRequest([FieldProblem("TRIP_ID", f"payq has no jobs for trip {store_id}/{trip_id} (or they are past their retention)")])
        if as_json:
            click.echo(json.dumps(view, indent=2))
            return
        currency = view["currency"] or ""
        click.echo(f"trip {store_id}/{trip_id}: captured {view['captured']} {currency}, refunded {view['refunded']}, "
                   f"refunding {view['refunding']}, refundable {view['refundable'] if view['refundable'] is not None else '-'}")
        for label, job_view_ in [("capture", view["capture"]), ("cancel", view["cancel"]), ("report", view["report"])] + [
            ("refund", r) for r in view["refunds"]
        ]:
            if job_view_ is None:
                continue
            extra = f" reconciliationId {job_view_['reconciliationId']}" if job_view_["reconciliationId"] else ""
            why = f" ({job_view_['why']})" if job_view_["why"] else ""
            amount = f" {job_view_['amount']}" if job_view_["amount"] else ""
            click.echo(f"  {label:<8} {job_view_['jobId']}{amount}: {job_view_['state']}{why}, {job_view_['attempts']} attempt(s){extra}")
        for entry in view["deadLetters"]:
            click.echo(f"  dead letter {entry['jobId']}: {entry['reason']}: {entry['error']}")


def _rate(value: float | None) -> str:
    return "unpaced" if value is None else f"{value:.3g}/s"


_REPLICA_STATES = {
    ReplicaState.SAFE: "",
    ReplicaState.DEGRADED: "; DEGRADED: no replica holds the jobs, payq goes on with the primary alone",
    ReplicaState.REFUSING: ": NOT MET, enqueues are refused and workers take no jobs",
}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (times as UTC ISO 8601).")
def stats(as_json: bool) -> None:
    """Which Redis is primary and its replicas in sync; queue depths, deferred jobs, dead letters, endpoint pauses and paces, API calls, live workers.

    Deferred jobs show their count and when the next is due; dead letters are
    counted by reason; pauses are the active ones, with their end; each
    endpoint's pace is the one in force (the lower of configured and learned),
    with the calls made and how many were answered 429. Live workers are the
    worker processes whose heartbeat is within a lease, with its age; jobs
    given back counts those recovered from workers whose lease lapsed. Stores:
    the busiest, each with its open jobs and its calls in the last minute, with
    its share of each endpoint's calls (issue #36: fair share between stores).
    """
    with exits_cleanly():
        rt = stores_from_env()
        snapshot = _redis(rt, lambda: collect(rt.redis, rt.jobs, rt.dead_letters, rt.pacer, rt.leases, rt.replicas, retention_of(rt.settings)))
        if as_json:
            click.echo(json.dumps(stats_view(snapshot), indent=2))
            return
        if snapshot.redis is not None:
            click.echo(f"redis: primary {snapshot.redis.primary}, replicas in sync {snapshot.redis.in_sync} of {snapshot.redis.replicas}"
                       f" (PAYQ_REDIS_MIN_REPLICAS {snapshot.redis.floor}{_REPLICA_STATES[snapshot.redis.state]})")
        click.echo("queues:")
        for queue, depth in snapshot.queues.items():
            click.echo(f"  {queue:<20} {depth}")
        click.echo(f"in flight (running, unacked): {snapshot.unacked}")
        click.echo(f"deferred: {snapshot.deferred}" + (f", next due {iso(snapshot.deferred_next_due)}" if snapshot.deferred_next_due else ""))
        click.echo(f"waiting for their capture (refunds held): {snapshot.waiting}")
        click.echo(f"outbox (notifications not yet delivered): {snapshot.outbox}"
                   + (f", oldest from {iso(snapshot.outbox_oldest)}" if snapshot.outbox_oldest else ""))
        click.echo("dead letters: " + (", ".join(f"{r} {n}" for r, n in sorted(snapshot.dead_letters.items())) or "none"))
        click.echo("endpoint pauses: " + (", ".join(f"{op} until {iso(u)}" for op, u in snapshot.pauses.items()) or "none"))
        click.echo("endpoint paces (calls/s; configured, learned):")
        for op, pace in snapshot.paces.items():
            calls = snapshot.api_calls.get(op, {})
            made = sum(calls.values())
            click.echo(f"  {op:<9} {_rate(pace.pace):>8}   configured {_rate(pace.configured)}, learned {_rate(pace.learned)}   "
                       f"calls {made}, throttled (429) {calls.get('429', 0)}")
        click.echo(f"live workers: {len(snapshot.live_workers)}")
        for seen in snapshot.live_workers:
            click.echo(f"  {seen.worker:<40} last heartbeat {seen.age:.1f} s ago")
        click.echo(f"jobs given back from workers whose lease lapsed: {snapshot.recovered}")
        click.echo("stores (open jobs; calls in the last minute and their share of the endpoint's): " + ("none" if not snapshot.stores else ""))
        for load in snapshot.stores:
            done = ", ".join(f"{op} {n} ({load.shares.get(op, 0.0):.0%})" for op, n in load.calls.items()) or "no calls"
            click.echo(f"  {load.store:<20} open {load.open_jobs:<7} {done}")
        if snapshot.memory is not None:
            for line in memory_lines(snapshot.memory, rt.settings):
                click.echo(line)
