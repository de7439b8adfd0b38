"""Who may use the console, and which POSTs it believes: users and roles, CSRF tokens, Origin checks.

- No user configured (``PAYQ_CONSOLE_USERS``, ``PAYQ_CONSOLE_BASIC_AUTH``):
  every ``/console`` path answers 404, as if there were no console (the
  intake's store tokens never open it).
- HTTP basic auth, read by FastAPI's ``HTTPBasic``; a wrong or missing login
  gets 401 with ``WWW-Authenticate: Basic``. Passwords are checked against
  bcrypt hashes (:mod:`payq.serve.console.users`).
- A viewer reads every page; only an operator's POST is carried out.
  ``PAYQ_CONSOLE_READ_ONLY=true`` makes every user a viewer on this process.
  A refused POST is recorded in the action log under the user's name.
- Every action is a POST carrying a CSRF token in a hidden field: an HMAC of
  the user and the day, keyed by the user's secret (:func:`~payq.serve.console.users.csrf_token`).
  A page of another site can make the browser send the basic-auth
  credentials, but cannot read a console page to learn the token.
- A POST whose ``Origin`` (or, without one, ``Referer``) names another host
  than the request's is refused whatever its token; ``X-Forwarded-Host``
  reaches here only from a trusted proxy (:mod:`payq.serve.edge`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.datastructures import FormData

from config.settings import Settings
from payq.serve.console.actionlog import Action, ActionLog
from payq.serve.console.state import Console, Refusal, console_of
from payq.serve.console.users import Role, User, accepts, csrf_day, csrf_token

CSRF_FIELD = "csrf"
REALM = "payq console"
_basic = HTTPBasic(auto_error=False, realm=REALM, scheme_name="consoleUser", description="A console user (PAYQ_CONSOLE_USERS).")
_CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}


@dataclass(frozen=True)
class Operator:
    """The signed-in user: name, role on this process, and the CSRF token every form of theirs carries today."""

    user: str
    role: Role
    csrf: str

    @property
    def may_act(self) -> bool:
        """Whether this user's actions are carried out (an operator's), or only their pages shown (a viewer's)."""
        return self.role is Role.OPERATOR


def console_on(settings: Settings) -> bool:
    """Whether any console user is configured."""
    return bool(settings.console_users) or settings.console_basic_auth is not None


async def _credentials(request: Request) -> HTTPBasicCredentials | None:
    """The basic-auth credentials, or None (missing, another scheme, or not decodable: HTTPBasic's own refusal)."""
    try:
        return await _basic(request)
    except HTTPException:
        return None


def signed_in(request: Request, credentials: HTTPBasicCredentials | None) -> tuple[User, Console] | None:
    """The console user these credentials sign in, or None; 404 when the console is off."""
    if not console_on(request.app.state.settings):
        raise HTTPException(404, "Not Found")
    if credentials is None:
        return None
    console = console_of(request)
    user = console.users.verify(credentials.username, credentials.password, time.time())
    return (user, console) if user is not None else None


def operator(request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(_credentials)]) -> Operator:
    """The dependency on every console route: 404 when the console is off, 401 unless the credentials are a user's."""
    found = signed_in(request, credentials)
    if found is None:
        raise Refusal(401, "Sign in", "The console needs a console user's login (PAYQ_CONSOLE_USERS). Reload the page to be asked again.",
                      headers=_CHALLENGE)
    user, console = found
    who = Operator(user.name, console.users.role_of(user), csrf_token(user, csrf_day(time.time())))
    request.state.operator = who
    request.state.user = user
    return who


async def checked_form(request: Request, who: Annotated[Operator, Depends(operator)]) -> FormData:
    """The dependency on every action: the POSTed form, once the role, the Origin and the CSRF token allow it (403 otherwise)."""
    console = console_of(request)
    if not who.may_act:
        why = "PAYQ_CONSOLE_READ_ONLY: every user is a viewer here" if console.users.read_only else "a viewer reads, never changes"
        console.redis(lambda: ActionLog(console.stores.redis).record(
            Action(time.time(), who.user, who.role.value, f"refused POST {request.url.path}", why)))
        raise Refusal(403, "Not allowed", f"{who.user} is a {who.role.value} on this console: nothing can be changed from it ({why})")
    if not same_origin(request.headers.get("origin"), request.headers.get("referer"), _hosts(request)):
        raise Refusal(403, "Refused", "refused: this form was not sent from the console's own pages")
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not accepts(request.state.user, token, time.time()):
        raise Refusal(403, "Refused", "refused: the form's CSRF token is missing or wrong (reload the page and try again)")
    return form


def same_origin(origin: str | None, referer: str | None, hosts: set[str]) -> bool:
    """Whether the page that sent a POST is on one of ``hosts`` (``host[:port]``); True when the browser names no page.

    Browsers send ``Origin`` with every form POST; ``Referer`` is the fallback
    (absent when a policy strips it: the CSRF token still decides then).
    ``Origin: null`` (a sandboxed frame, a redirect across sites) is refused.
    """
    source = origin if origin is not None else referer
    if source is None:
        return True
    if source == "null":
        return False
    return urlsplit(source).netloc.lower() in hosts


def _hosts(request: Request) -> set[str]:
    """The host this request was addressed to: ``Host``, and ``X-Forwarded-Host`` (present only when a trusted proxy sent it)."""
    names = {request.headers.get("host", "")}
    forwarded = request.headers.get("x-forwarded-host")
    if forwarded:
        names.add(forwarded.split(",")[0].strip())
    return {n.lower() for n in names if n}

