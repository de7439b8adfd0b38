"""The operators' console at ``/console/``: dead letters, live jobs, workers, trips and endpoints in a browser, beside Flower.

Server-rendered pages (Jinja2 templates in ``templates/``, one stylesheet, no
scripts): ``pages`` reads (overview, workers, dead letters, one dead letter, trips),
``jobs`` the jobs that are not dead (and one job), ``actions`` changes
(replay, purge, each one, selected or all that match; lifting an endpoint's
pause), each with the CLI's own store methods; ``guard`` decides who may
(basic auth, read-only, CSRF); ``listing`` and ``live`` page through the dead
letters and the live jobs; ``fleet`` reads the workers' heartbeats and
leases; ``throughput`` reads each endpoint's recent
successes; ``state`` holds what the requests share and answers refusals
(401, 403, 405, 503) with HTML pages.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from payq.serve.console import actions, jobs, pages
from payq.serve.console.guard import operator
from payq.serve.console.state import Refusal, refusal_page

router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[Depends(operator)])
# "/console" itself too, not only "/console/": a redirect would answer even while the console is off
router.add_api_route("", pages.overview, methods=["GET"])
router.include_router(pages.router)
router.include_router(jobs.router)
router.include_router(actions.router)


def install(app: FastAPI) -> None:
    """Serve the console on ``app``: its routes, and its refusals (401, 403, 405, 503) as HTML pages."""
    app.include_router(router)
    app.add_exception_handler(Refusal, refusal_page)
