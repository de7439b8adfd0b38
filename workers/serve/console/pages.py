"""The console's pages (GETs: they read, never change anything): overview, dead letters, one dead letter, trips."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from payapi.operations import Operation
from tasks.jobstore import failure_from
from tasks.states import DeadLetterReason
from tasks.stats import collect
from workers.serve.console.listing import DeadLetterQuery, page_of
from workers.serve.console.state import Console, console_of
from workers.views import read_trip

router = APIRouter()
ConsoleDep = Annotated[Console, Depends(console_of)]
OVERVIEW_REFRESH_SECONDS = 5
REPLAY_ALL_SAMPLE = 20  # entries the replay-all confirmation lists before "and N more"
_FORM_ACTIONS = ("replay", "purge")  # POST-only paths under /dead-letters/ (replay-all has a confirmation page)


@router.get("/")
def overview(request: Request, console: ConsoleDep) -> HTMLResponse:
    """Queue depths, running, deferred, held refunds, dead letters by reason, pauses and paces; the page reloads itself."""
    rt = console.runtime
    stats = console.redis(lambda: collect(rt.redis, rt.jobs, rt.dead_letters, rt.pacer))
    reasons = {reason.value: stats.dead_letters.get(reason.value, 0) for reason in DeadLetterReason}
    reasons.update(stats.dead_letters)  # a reason this payq does not know yet is still shown
    return console.render(request, "overview.html", stats=stats, reasons=reasons, refresh=OVERVIEW_REFRESH_SECONDS)


@router.get("/static/console.css")
def stylesheet(console: ConsoleDep) -> Response:
    """The console's only stylesheet (no scripts anywhere)."""
    return Response(console.stylesheet, media_type="text/css", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/dead-letters")
def dead_letters(request: Request, console: ConsoleDep) -> HTMLResponse:
    """The list, newest first, filtered by reason, operation, store and age, searchable by job id or trip, a page at a time."""
    query = DeadLetterQuery.parse(request.query_params)
    number = _page_number(request.query_params.get("page"))
    page = console.redis(lambda: page_of(console.runtime.dead_letters, query, number, time.time()))
    return console.render(request, "dead_letters.html", 400 if query.problems else 200, query=query, page=page,
                          reasons=list(DeadLetterReason), operations=list(Operation))


@router.get("/dead-letters/replay-all")
def confirm_replay_all(request: Request, console: ConsoleDep) -> HTMLResponse:
    """How many entries match the filter, and a button to replay exactly those (those dead-lettered since are left)."""
    query = DeadLetterQuery.parse(request.query_params)
    as_of = time.time()
    since, older_than = query.frozen_bounds(as_of)
    entries = console.redis(lambda: query.select(console.runtime.dead_letters, since, older_than))
    return console.render(request, "confirm_replay_all.html", 400 if query.problems else 200, query=query, entries=entries,
                          sample=entries[:REPLAY_ALL_SAMPLE], as_of=repr(as_of))


@router.get("/dead-letters/{entry_id:path}")
def dead_letter(request: Request, entry_id: str, console: ConsoleDep) -> HTMLResponse:
    """Everything stored for one entry, its replay history, a link to its job in Flower, and its actions."""
    if entry_id in _FORM_ACTIONS:
        # a form's address opened by hand (or a prefetch): not a job named "replay", and never the action itself
        raise HTTPException(405, f"/console/dead-letters/{entry_id} is a form's action: it takes POST", headers={"Allow": "POST"})
    entry = console.redis(lambda: console.runtime.dead_letters.get(entry_id))
    if entry is None:
        return console.render(request, "gone.html", 404, entry_id=entry_id)
    history = [{**item, "failure_line": _history_failure(item)} for item in entry.history]
    return console.render(request, "dead_letter.html", entry=entry, history=history)


@router.get("/trips")
def trips(request: Request, console: ConsoleDep, store: str = "", trip: str = "") -> HTMLResponse:
    """Search by storeId and shoppingTripId; the trip as ``payq trip`` shows it: jobs, states, amounts, dead letters."""
    store, trip = store.strip(), trip.strip()
    view = None
    if store and trip:
        rt = console.runtime
        view = console.redis(lambda: read_trip(rt.jobs, rt.dead_letters, store, trip))
    status = 404 if store and trip and view is None else 200
    return console.render(request, "trips.html", status, store=store, trip=trip, view=view)


def _page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or 1))
    except ValueError:
        return 1


def _history_failure(item: dict[str, object]) -> str:
    """The failure an earlier replay recorded, as a person reads it."""
    data = item.get("failure")
    failure = failure_from(data) if isinstance(data, dict) else None
    return failure.describe() if failure is not None else str(item.get("error", "-"))
