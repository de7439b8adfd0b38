"""The Jobs pages (GETs): the live jobs by state, operation and store, a bounded page at a time; one job as ``payq job`` shows it."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from payapi.operations import Operation
from payq.serve.console.live import JobQuery, LiveState, counts, page_of, waits_for
from payq.serve.console.pages import history_failure
from payq.serve.console.state import Console, console_of
from payq.views import job_view, subject_of
from tasks.redis import keys
from tasks.states import JobState

router = APIRouter()
ConsoleDep = Annotated[Console, Depends(console_of)]


@router.get("/jobs")
def jobs(request: Request, console: ConsoleDep) -> HTMLResponse:
    """Live jobs in one state (queued, running, deferred, waiting), filtered by operation and store, each with what it waits for."""
    query = JobQuery.parse(request.query_params)
    client = console.stores.redis
    now = time.time()
    page, sizes = console.redis(lambda: (page_of(client, query, now), counts(client)))
    return console.render(request, "jobs.html", 400 if query.problems else 200, query=query, page=page, sizes=sizes,
                          states=list(LiveState), operations=list(Operation))


@router.get("/jobs/{job_id:path}")
def job(request: Request, job_id: str, console: ConsoleDep) -> HTMLResponse:
    """One job: its state, why it waits, attempts, its holder and lease while it runs, deferrals and replay history, with links to its trip and dead letter."""
    rt = console.stores

    def read() -> tuple[dict[str, str] | None, bool, list[dict[str, Any]], list[str], float | None]:
        return (rt.jobs.get(job_id), rt.dead_letters.get(job_id) is not None, rt.jobs.deferrals(job_id),
                cast(list[str], rt.redis.lrange(keys.replays(job_id), 0, -1)), rt.leases.lease_of(job_id))

    record, in_dlq, deferrals, replays, lease_until = console.redis(read)
    if record is None:
        return console.render(request, "job_gone.html", 404, job_id=job_id)
    view = job_view(job_id, record, in_dlq, deferrals, lease_until)
    live = {s.value: s for s in LiveState}.get(record.get("state", ""))
    waiting = waits_for(live, dict(record), time.time()) if live is not None else None
    history = [{**item, "failure_line": history_failure(item)} for item in map(json.loads, replays)]
    # the kwargs as stored, as the worker sends them (a report's time in epoch seconds), not the view's public shape
    kwargs = json.loads(record["kwargs"]) if "kwargs" in record else {}
    return console.render(request, "job.html", view=view, kwargs=kwargs, subject=subject_of(kwargs), waits=waiting, history=history,
                          dead=record.get("state") == JobState.DEAD)

