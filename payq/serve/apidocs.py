"""``/docs`` (Swagger UI) and ``/redoc``: the intake's API, read in a browser; and ``/favicon.ico``.

Off unless ``PAYQ_SERVE_DOCS=true`` (both answer 404 then). On, they are for
a console user (any role, by the console's basic auth) or a store backend's
token, and everything they load is served by payq itself: Swagger UI's and
Redoc's files from the ``fastapi-offline`` package (which tracks their
releases), the page and its one script from here. Their Content-Security-Policy
names no origin but the page's own, so no third party's script ever runs
where a browser holds the console's credentials. ``/openapi.json`` is public
and the same whatever the setting: these routes are not in it.
"""

from __future__ import annotations

import time
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from config.settings import Settings
from payq.serve.access import stores_of
from payq.serve.console.guard import REALM, console_on
from payq.serve.console.state import console_of

router = APIRouter(include_in_schema=False)
_VENDORED = resources.files("fastapi_offline").joinpath("static")
_OWN = resources.files("payq.serve").joinpath("static")
ASSETS: dict[str, tuple[Traversable, str]] = {
    "swagger-ui-bundle.js": (_VENDORED.joinpath("swagger-ui-bundle.js"), "text/javascript"),
    "swagger-ui.css": (_VENDORED.joinpath("swagger-ui.css"), "text/css"),
    "redoc.standalone.js": (_VENDORED.joinpath("redoc.standalone.js"), "text/javascript"),
    "swagger-init.js": (_OWN.joinpath("swagger-init.js"), "text/javascript"),
}
# Redoc's menu shows its maker's logo from their CDN, whatever its options: an image the policy would refuse anyway, so it
# is made an empty data: URL, which Redoc's own error handler then hides; nothing else in either bundle is fetched
_REWRITES = {"redoc.standalone.js": [(b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,")]}
# scripts and styles from this origin only; inline styles, which both UIs set on their elements; Redoc's search runs in a
# worker it makes from a blob; no frame, no form elsewhere
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
       "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}
_basic = HTTPBasic(auto_error=False, realm=REALM)
_bearer = HTTPBearer(auto_error=False)

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>payq API · Swagger UI</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-init.js"></script>
</body>
</html>
"""
REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>payq API · Redoc</title>
<link rel="icon" href="/favicon.ico">
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/docs/assets/redoc.standalone.js"></script>
</body>
</html>
"""


async def _basic_credentials(request: Request) -> HTTPBasicCredentials | None:
    try:
        return await _basic(request)
    except HTTPException:  # a Basic header that does not decode: as if there were none
        return None


def reader(
    request: Request,
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic_credentials)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The dependency on every docs path: 404 while the pages are off; else a console user or a store backend's token, or 401."""
    settings: Settings = request.app.state.settings
    if not settings.serve_docs:
        raise HTTPException(404, "Not Found")
    if basic is not None and console_on(settings) and console_of(request).users.verify(basic.username, basic.password, time.time()):
        return
    if bearer is not None and stores_of(bearer.credentials, settings.intake_tokens) is not None:
        return
    raise HTTPException(401, "the API's pages need a console user's login or a store backend's token",
                        headers={"WWW-Authenticate": f'Basic realm="{REALM}", Bearer realm="payq"'})


@router.get("/docs", dependencies=[Depends(reader)])
def swagger() -> HTMLResponse:
    """Swagger UI over ``/openapi.json``."""
    return HTMLResponse(SWAGGER_PAGE, headers=PAGE_HEADERS)


@router.get("/redoc", dependencies=[Depends(reader)])
def redoc() -> HTMLResponse:
    """Redoc over ``/openapi.json``."""
    return HTMLResponse(REDOC_PAGE, headers=PAGE_HEADERS)


@router.get("/docs/assets/{name}", dependencies=[Depends(reader)])
def asset(name: str) -> Response:
    """One of the pages' scripts and styles; 404 for any other name."""
    if name not in ASSETS:
        raise HTTPException(404, "Not Found")
    return Response(asset_bytes(name), media_type=ASSETS[name][1], headers={"Cache-Control": "private, max-age=3600"})


@cache
def asset_bytes(name: str) -> bytes:
    """The asset ``name`` as served, read once (the bundles are a megabyte or more each)."""
    data = ASSETS[name][0].read_bytes()
    for old, new in _REWRITES.get(name, []):
        data = data.replace(old, new)
    return data


@router.get("/favicon.ico")
def favicon() -> Response:
    """payq's icon, for every page's tab (no login: it tells nothing)."""
    return Response(_OWN.joinpath("favicon.svg").read_bytes(), media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})
