"""The console's pages (GETs: they read, never change anything): overview, workers, dead letters, one dead letter, trips."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from payapi.operations import API_OPERATIONS, Operation
from payq.serve.console import fleet, throughput
from payq.serve.console.actionlog import ActionLog
from payq.serve.console.listing import DeadLetterQuery, page_of
from payq.serve.console.state import Console, Refusal, console_of
from payq.views import read_trip
from tasks.jobs.deferral import failure_from
from tasks.pacing.endpoints import EndpointLog
from tasks.states import DeadLetterReason
from tasks.stats import collect

router = APIRouter()
ConsoleDep = Annotated[Console, Depends(console_of)]
OVERVIEW_REFRESH_SECONDS = 5
LIFTS_SHOWN = 10  # the latest lifts of a pause or learned pace the overview lists
CONFIRM_SAMPLE = 20  # entries an all-that-match confirmation lists before "and N more"
LOG_SHOWN = 200  # the latest action log entries the log page shows


@router.get("/")
def overview(request: Request, console: ConsoleDep) -> HTMLResponse:
    """Queue depths, running, deferred, held refunds, dead letters by reason; per endpoint its pause and pace (liftable) and
    throughput; the endpoint log; the workers in brief. The page reloads itself."""
    rt = console.stores
    log = EndpointLog(rt.redis)
    stats, lifts, rates, seen = console.redis(lambda: (
        collect(rt.redis, rt.jobs, rt.dead_letters, rt.pacer), log.recent(LIFTS_SHOWN),
        throughput.recent(rt.redis, API_OPERATIONS, time.time()), fleet.read(rt.redis, rt.leases.lease)))
    reasons = {reason.value: stats.dead_letters.get(reason.value, 0) for reason in DeadLetterReason}
    reasons.update(stats.dead_letters)  # a reason this payq does not know yet is still shown
    return console.render(request, "overview.html", stats=stats, reasons=reasons, lifts=lifts, rates=rates,
                          window=throughput.WINDOW, refresh=OVERVIEW_REFRESH_SECONDS, fleet=seen)


@router.get("/workers")
def workers(request: Request, console: ConsoleDep) -> HTMLResponse:
    """Each live worker process (last heartbeat, steady or not) with the jobs it holds and their lease ends; those whose
    heartbeat stopped, apart; the jobs given back. The page reloads itself."""
    rt = console.stores
    found = console.redis(lambda: fleet.read(rt.redis, rt.leases.lease))
    return console.render(request, "workers.html", fleet=found, refresh=OVERVIEW_REFRESH_SECONDS, recently_dead=fleet.RECENTLY_DEAD,
                          max_workers=fleet.MAX_WORKERS, max_held=fleet.MAX_HELD)


@router.get("/log")
def action_log(request: Request, console: ConsoleDep) -> HTMLResponse:
    """The console's action log, newest first: who replayed, purged or lifted what from the console, and who was refused."""
    entries = console.redis(lambda: ActionLog(console.stores.redis).recent(LOG_SHOWN))
    return console.render(request, "log.html", entries=entries, shown=LOG_SHOWN)


@router.get("/static/console.css")
def stylesheet(console: ConsoleDep) -> Response:
    """The console's only stylesheet (no scripts anywhere)."""
    return Response(console.stylesheet, media_type="text/css", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/dead-letters")
def dead_letters(request: Request, console: ConsoleDep) -> HTMLResponse:
    """The list, newest (or oldest) first, filtered by reason, operation, store and age, searchable by job id or trip, a page at a time.

    ``select=page`` shows the page with every entry ticked (there are no
    scripts to tick them): "select all on this page".
    """
    query = DeadLetterQuery.parse(request.query_params)
    number = _page_number(request.query_params.get("page"))
    page = console.redis(lambda: page_of(console.stores.dead_letters, query, number, time.time()))
    return console.render(request, "dead_letters.html", 400 if query.problems else 200, query=query, page=page,
                          reasons=list(DeadLetterReason), operations=list(Operation), select_all=request.query_params.get("select") == "page")


@router.get("/dead-letters/replay-all")
def confirm_replay_all(request: Request, console: ConsoleDep) -> HTMLResponse:
    """How many entries match the filter, and a button to replay exactly those (those dead-lettered since are left)."""
    return _confirm_all(request, console, "replay")


@router.get("/dead-letters/purge-all")
def confirm_purge_all(request: Request, console: ConsoleDep) -> HTMLResponse:
    """How many entries match the filter, and a button to purge exactly those (those dead-lettered since are left)."""
    return _confirm_all(request, console, "purge")


@router.get("/dead-letters/replay")
@router.get("/dead-letters/purge")
def action_by_get(request: Request) -> HTMLResponse:
    """An action's address opened as a page (a link, a reload): 405, not a dead letter named "replay"."""
    entry = request.query_params.get("id")
    where = f" Open the dead letter ({entry}) and use its button." if entry else " Use the buttons on the dead letters' pages."
    raise Refusal(405, "Not a page", f"{request.url.path} is an action: it is sent by a form's button, never opened.{where}",
                  headers={"Allow": "POST"})


@router.get("/dead-letters/{entry_id:path}")
def dead_letter(request: Request, entry_id: str, console: ConsoleDep) -> HTMLResponse:
    """Everything stored for one entry, its replay history, a link to its job in Flower, and its actions."""
    entry = console.redis(lambda: console.stores.dead_letters.get(entry_id))
    if entry is None:
        return console.render(request, "gone.html", 404, entry_id=entry_id)
    history = [{**item, "failure_line": history_failure(item)} for item in entry.history]
    return console.render(request, "dead_letter.html", entry=entry, history=history)


@router.get("/trips")
def trips(request: Request, console: ConsoleDep, store: str = "", trip: str = "") -> HTMLResponse:
    """Search by storeId and shoppingTripId; the trip as ``payq trip`` shows it: jobs, states, amounts, dead letters."""
    store, trip = store.strip(), trip.strip()
    view = None
    if store and trip:
        rt = console.stores
        view = console.redis(lambda: read_trip(rt.jobs, rt.dead_letters, store, trip))
    status = 404 if store and trip and view is None else 200
    return console.render(request, "trips.html", status, store=store, trip=trip, view=view)


def _confirm_all(request: Request, console: Console, action: Literal["replay", "purge"]) -> HTMLResponse:
    """The confirmation of an action on every entry the filter matches: their count, the first few, and the button."""
    query = DeadLetterQuery.parse(request.query_params)
    as_of = time.time()
    since, older_than = query.frozen_bounds(as_of)
    entries = console.redis(lambda: query.select(console.stores.dead_letters, since, older_than))
    return console.render(request, "confirm_all.html", 400 if query.problems else 200, action=action, query=query, entries=entries,
                          sample=entries[:CONFIRM_SAMPLE], as_of=repr(as_of))


def _page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or 1))
    except ValueError:
        return 1


def history_failure(item: dict[str, object]) -> str:
    """The failure an earlier replay recorded, as a person reads it."""
    data = item.get("failure")
    failure = failure_from(data) if isinstance(data, dict) else None
    return failure.describe() if failure is not None else str(item.get("error", "-"))
