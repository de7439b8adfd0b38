"""The console's actions: replay or purge one, those selected, or all that match; lift an endpoint's pause and learned pace.

Each is a POST that :func:`~payq.serve.console.guard.checked_form` let
through (not read-only, same origin, the right CSRF token), and each calls
exactly the store methods ``payq dlq replay`` and ``payq dlq purge`` call:
``DeadLetterStore.replay_entries`` removes an entry in the same atomic script
that publishes its job, and only if it is still the entry that was read, so a
replay from here and one from the CLI at the same moment replay it once.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from payapi.operations import API_OPERATIONS, OPERATIONS, Operation
from payq.serve.console.actionlog import Action, ActionLog
from payq.serve.console.guard import Operator, checked_form, operator
from payq.serve.console.listing import DeadLetterQuery
from payq.serve.console.state import Console, Refusal, console_of, query_string
from tasks.pacing.endpoints import EndpointLog
from tasks.store.deadletters import DeadLetter, Replayed

router = APIRouter()
ConsoleDep = Annotated[Console, Depends(console_of)]
FormDep = Annotated[FormData, Depends(checked_form)]
OperatorDep = Annotated[Operator, Depends(operator)]
REPLAY_CHUNK = 200  # entries per pipelined round trip, as the CLI replays them
LOGGED_IDS = 10  # job ids an action log entry names before "and N more"

OUTCOMES = {
    Replayed.REPLAYED: "replayed: back on its queue, same job id and idempotency key",
    Replayed.GONE: "not replayed: already replayed or purged by someone else",
    Replayed.CHANGED: "not replayed: it was dead-lettered anew while being replayed; look at it again",
    Replayed.OVER_REFUND: "not replayed: its trip has no room left to refund it (other refunds were made meanwhile)",
}


@dataclass(frozen=True)
class Row:
    """One entry an action was asked to act on, and what became of it."""

    id: str
    entry: DeadLetter | None
    outcome: Replayed | None = None

    @property
    def text(self) -> str:
        """What happened, as the operator reads it."""
        return OUTCOMES[self.outcome] if self.outcome is not None else ""


@router.post("/dead-letters/replay")
def replay_selected(request: Request, form: FormDep, who: OperatorDep, console: ConsoleDep) -> HTMLResponse:
    """Replay the entries named by ``id`` (one from a detail page, or those ticked in the list)."""
    ids = _ids(form)
    if not ids:
        return _nothing(request, console, "Select at least one dead letter to replay.")
    found = console.redis(lambda: [console.stores.dead_letters.get(i) for i in ids])
    entries = [e for e in found if e is not None]
    outcomes = dict(zip((e.id for e in entries), _replay(console, entries, who), strict=True))
    rows = [Row(i, e, outcomes.get(i, Replayed.GONE)) for i, e in zip(ids, found, strict=True)]
    return _replayed(request, console, rows, back=_back(form), who=who)


@router.post("/dead-letters/replay-all")
def replay_all(request: Request, form: FormDep, who: OperatorDep, console: ConsoleDep) -> HTMLResponse:
    """Replay every entry the filter matched when the confirmation was shown (``as_of``); those dead-lettered since are left."""
    matched = _confirmed(form, console)
    rows = [Row(e.id, e, outcome) for e, outcome in zip(matched.entries, _replay(console, matched.entries, who), strict=True)]
    return _replayed(request, console, rows, back=matched.back, who=who)


@router.post("/dead-letters/purge-all")
def purge_all(request: Request, form: FormDep, who: OperatorDep, console: ConsoleDep) -> HTMLResponse:
    """Purge every entry the filter matched when the confirmation was shown (``as_of``); those dead-lettered since are left.

    The store checks each entry's time again as it deletes (``dead_before``):
    one replayed and dead-lettered anew meanwhile is a failure the operator
    has not seen, and stays.
    """
    matched = _confirmed(form, console)
    ids = [e.id for e in matched.entries]
    purged = console.redis(lambda: console.stores.dead_letters.purge(ids, dead_before=matched.dead_before))
    _record(console, who, "purge all that match", f"purged {purged} of {len(ids)}", ids)
    return console.render(request, "purged.html", purged=purged, asked=len(ids), back=matched.back)


@router.post("/dead-letters/purge")
def purge_selected(request: Request, form: FormDep, who: OperatorDep, console: ConsoleDep) -> HTMLResponse:
    """Without ``confirm``: the confirmation page. With it: delete those entries for good (``payq dlq purge ID...``).

    Only entries dead-lettered before the confirmation was shown are purged:
    one replayed and dead-lettered anew meanwhile is a failure the operator
    has not seen, and stays.
    """
    ids = _ids(form)
    if not ids:
        return _nothing(request, console, "Select at least one dead letter to purge.")
    if form.get("confirm") != "yes":
        found = console.redis(lambda: [console.stores.dead_letters.get(i) for i in ids])
        rows = [Row(i, e) for i, e in zip(ids, found, strict=True)]
        return console.render(request, "confirm_purge.html", rows=rows, present=sum(1 for r in rows if r.entry is not None),
                              as_of=repr(time.time()), back=_back(form))
    as_of = _as_of(form)
    if as_of is None:
        return _nothing(request, console, "The confirmation's time is missing: confirm again from the list.")
    purged = console.redis(lambda: console.stores.dead_letters.purge(ids, dead_before=as_of))
    _record(console, who, "purge", f"purged {purged} of {len(ids)}", ids)
    return console.render(request, "purged.html", purged=purged, asked=len(ids), back=_back(form))


@router.post("/endpoints/lift")
def lift_endpoint(request: Request, form: FormDep, who: OperatorDep, console: ConsoleDep) -> HTMLResponse:
    """End an endpoint's pause and forget its learned pace (``payq pace reset OP``), recorded in the endpoint log as this operator."""
    name = str(form.get("operation", ""))
    if name not in {op.value for op in API_OPERATIONS}:
        return _nothing(request, console, f"operation: must be one of {', '.join(op.value for op in API_OPERATIONS)}", back="/console/")
    log = EndpointLog(console.stores.redis)
    lifted = console.redis(lambda: log.lift(Operation(name), f"{who.user} (payq console)", time.time()))
    _record(console, who, f"lift {name}", lifted.describe(), [])
    return console.render(request, "lifted.html", lifted=lifted)


@dataclass(frozen=True)
class Matched:
    """What an "all that match" confirmation covered: the entries, the latest dead-lettering time among them, where to go back."""

    entries: list[DeadLetter]
    dead_before: float
    back: str


def _confirmed(form: FormData, console: Console) -> Matched:
    """The entries the confirmed filter matches as of the confirmation (``as_of``); a 400 page if the form is not a confirmation."""
    query = DeadLetterQuery.parse(form)  # type: ignore[arg-type]  # FormData maps names to str (or files: not sent here)
    as_of = _as_of(form)
    if query.problems or as_of is None:
        raise Refusal(400, "Nothing was done", "; ".join(query.problems) or "The confirmation's time is missing: confirm again from the list.")
    since, older_than = query.frozen_bounds(as_of)
    entries = console.redis(lambda: query.select(console.stores.dead_letters, since, older_than))
    return Matched(entries, older_than, f"/console/dead-letters{query_string(query.params())}")


def _replay(console: Console, entries: list[DeadLetter], who: Operator) -> list[Replayed]:
    """``replay_entries`` a chunk at a time, as ``payq dlq replay`` does; the history records who replayed from where."""
    by = f"{who.user} (payq console)"
    done: list[Replayed] = []
    for start in range(0, len(entries), REPLAY_CHUNK):
        chunk = entries[start : start + REPLAY_CHUNK]
        # A retry after a lost reply finds the entries it already replayed gone and skips them:
        # they are then reported as "gone", but never published twice.
        done += console.redis(lambda chunk=chunk: console.stores.dead_letters.replay_entries(chunk, by))  # type: ignore[misc]
    return done


def _replayed(request: Request, console: Console, rows: list[Row], back: str, who: Operator) -> HTMLResponse:
    counts = Counter(r.outcome for r in rows)
    _record(console, who, "replay", f"replayed {counts[Replayed.REPLAYED]} of {len(rows)}", [r.id for r in rows])
    # where each went back to: its queue, or the outbox for a notification
    queues = {r.entry.id: OPERATIONS[r.entry.operation].queue if r.entry.operation in OPERATIONS else "the outbox"
              for r in rows if r.entry is not None}
    return console.render(request, "replayed.html", rows=rows, counts=counts, queues=queues, asked=len(rows),
                          replayed=counts[Replayed.REPLAYED], refused=counts[Replayed.OVER_REFUND], back=back)


def _record(console: Console, who: Operator, action: str, outcome: str, ids: list[str]) -> None:
    """Record an action in the console's action log under the user's name (the first few ids it was about, and how many)."""
    named = ", ".join(ids[:LOGGED_IDS]) + (f" and {len(ids) - LOGGED_IDS} more" if len(ids) > LOGGED_IDS else "")
    entry = Action(time.time(), who.user, who.role.value, action, outcome + (f": {named}" if named else ""))
    console.redis(lambda: ActionLog(console.stores.redis).record(entry))


def _nothing(request: Request, console: Console, message: str, back: str = "/console/dead-letters") -> HTMLResponse:
    """A 400 page: the form asked for nothing that can be done."""
    return console.render(request, "problem.html", 400, message=message, back=back)


def _back(form: FormData) -> str:
    """Where the page came from, for its "back" link: a console path, or the list."""
    back = form.get("back")
    return back if isinstance(back, str) and back.startswith("/console/") else "/console/dead-letters"


def _ids(form: FormData) -> list[str]:
    """The job ids the form names (``id``, repeated), each once, in order."""
    return list(dict.fromkeys(str(v).strip() for v in form.getlist("id") if str(v).strip()))


def _as_of(form: FormData) -> float | None:
    """When the confirmation was shown (epoch seconds), or None if the form does not say."""
    try:
        value = float(str(form.get("as_of", "")))
    except ValueError:
        return None
    return value if math.isfinite(value) else None

