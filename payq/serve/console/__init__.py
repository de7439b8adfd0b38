"""The operators' console at ``/console/``: dead letters and trips in a browser, beside Flower.

Server-rendered pages (Jinja2 templates in ``templates/``, one stylesheet, no
scripts): ``pages`` reads (overview, dead letters, one dead letter, trips),
``actions`` changes (replay, replay all that match, purge), each with the
CLI's own store methods; ``guard`` decides who may (basic auth, read-only,
CSRF); ``listing`` pages through the dead letters; ``state`` holds what the
requests share.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from payq.serve.console import actions, pages
from payq.serve.console.guard import operator

router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[Depends(operator)])
# "/console" itself too, not only "/console/": a redirect would answer even while the console is off
router.add_api_route("", pages.overview, methods=["GET"])
router.include_router(pages.router)
router.include_router(actions.router)
