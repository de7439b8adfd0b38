"""Who may use the console, and which POSTs it believes: basic auth, read-only mode, CSRF tokens, Origin checks.

- ``PAYQ_CONSOLE_BASIC_AUTH`` unset: every ``/console`` path answers 404, as
  if there were no console (the intake's store tokens never open it).
- Wrong or missing credentials: 401 with ``WWW-Authenticate: Basic``; both
  compared in constant time (as digests, so not even the length leaks).
- Every action is a POST carrying a CSRF token in a hidden field: an HMAC of
  the signed-in user, keyed by a key derived from the console credential. So
  every ``payq serve`` behind one proxy accepts the same token, a restart
  keeps open pages usable, and changing the credential voids every token. A
  page of another site can make the browser send the basic-auth credentials,
  but cannot read a console page to learn the token.
- A POST whose ``Origin`` (or, without one, ``Referer``) names another host
  is refused whatever its token; ``PAYQ_CONSOLE_READ_ONLY=true`` refuses
  every POST before anything else is looked at.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import FormData

from config.settings import Settings
from payq.serve.console.state import Refusal

CSRF_FIELD = "csrf"
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="payq console", charset="UTF-8"'}


@dataclass(frozen=True)
class Operator:
    """The signed-in operator: the basic-auth user, and the CSRF token every form of theirs carries."""

    user: str
    csrf: str


def operator(request: Request) -> Operator:
    """The dependency on every console route: 404 when the console is off, 401 unless the credentials match."""
    settings: Settings = request.app.state.settings
    if settings.console_basic_auth is None:
        raise HTTPException(404, "Not Found")
    expected = settings.console_basic_auth.get_secret_value()
    given = _credentials(request.headers.get("authorization", ""))
    if given is None or not hmac.compare_digest(_digest(given), _digest(expected)):
        raise Refusal(401, "Sign in", "The console needs the operators' login (the user:password of PAYQ_CONSOLE_BASIC_AUTH). "
                      "Reload the page to be asked again.", headers=_CHALLENGE)
    user = given.partition(":")[0]
    found = Operator(user, csrf_token(expected, user))
    request.state.operator = found
    return found


async def checked_form(request: Request, who: Annotated[Operator, Depends(operator)]) -> FormData:
    """The dependency on every action: the POSTed form, once read-only mode, the Origin and the CSRF token allow it (403 otherwise)."""
    settings: Settings = request.app.state.settings
    if settings.console_read_only:
        raise Refusal(403, "Read-only", "the console is read-only (PAYQ_CONSOLE_READ_ONLY): nothing can be changed from it")
    if not same_origin(request.headers.get("origin"), request.headers.get("referer"), _hosts(request)):
        raise Refusal(403, "Refused", "refused: this form was not sent from the console's own pages")
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), who.csrf.encode()):
        raise Refusal(403, "Refused", "refused: the form's CSRF token is missing or wrong (reload the page and try again)")
    return form


def csrf_token(credential: str, user: str) -> str:
    """The token for ``user``'s forms: HMAC-SHA256 of the user, keyed by a key derived from the console credential."""
    key = hashlib.sha256(b"payq console csrf\0" + credential.encode()).digest()
    return hmac.new(key, user.encode(), hashlib.sha256).hexdigest()


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
    """The host this request was addressed to: ``Host``, and ``X-Forwarded-Host`` when a proxy rewrote it."""
    names = {request.headers.get("host", "")}
    forwarded = request.headers.get("x-forwarded-host")
    if forwarded:
        names.add(forwarded.split(",")[0].strip())
    return {n.lower() for n in names if n}


def _credentials(header: str) -> str | None:
    """``user:password`` from ``Authorization: Basic …``, or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded if ":" in decoded else None


def _digest(credential: str) -> bytes:
    return hashlib.sha256(credential.encode()).digest()
