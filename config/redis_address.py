"""Where payq's Redis is: one server (``redis://``, ``rediss://``, ``unix://``) or a primary found through Sentinel.

The Sentinel form is Celery's own, so one ``PAYQ_REDIS_URL`` serves the worker's
broker (kombu's ``sentinel://`` transport) and payq's clients alike:

    sentinel://[:PASSWORD@]HOST:PORT[/DB];sentinel://HOST:PORT;...

The password in the URL is the primary's (``requirepass``); a Sentinel that
needs one of its own takes ``PAYQ_REDIS_SENTINEL_PASSWORD``. Pure functions:
nothing here connects.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

SENTINEL_SCHEME = "sentinel"
DIRECT_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelAddress:
    """The Sentinels to ask, and what to ask for on the primary they name: its database and password."""

    sentinels: tuple[tuple[str, int], ...]
    db: int
    password: str | None


def sentinel_client_options(password: str | None) -> dict[str, object]:
    """How to talk to the Sentinels themselves: their own password, if any, and short timeouts (one down must not hold up asking the next)."""
    options: dict[str, object] = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    if password is not None:
        options["password"] = password
    return options


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names Sentinels (Celery's ``sentinel://…;sentinel://…`` form) rather than one server."""
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel(url: str) -> SentinelAddress:
    """The Sentinels of a ``sentinel://`` URL; ``ValueError`` naming what is wrong.

    The database and password may be given after any address (Celery reads
    them from the first that has them); given twice, they must agree.
    """
    sentinels: list[tuple[str, int]] = []
    dbs: set[int] = set()
    passwords: set[str] = set()
    for part in (p.strip() for p in url.split(";")):
        if not part:
            continue
        parts = urlsplit(part)
        if parts.scheme.lower() != SENTINEL_SCHEME:
            raise ValueError(f"every address must be sentinel://HOST:PORT, not {redact_url(part)!r}")
        try:
            port = parts.port or DEFAULT_SENTINEL_PORT
        except ValueError:
            raise ValueError(f"{redact_url(part)!r} has no valid port") from None
        if not parts.hostname:
            raise ValueError(f"{redact_url(part)!r} has no host")
        sentinels.append((parts.hostname, port))
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise ValueError(f"the database after {parts.hostname}:{port} must be a number, not {path!r}")
            dbs.add(int(path))
        if parts.password:
            passwords.add(unquote(parts.password))
    if not sentinels:
        raise ValueError("names no Sentinel: sentinel://HOST:PORT;sentinel://HOST:PORT")
    if len(dbs) > 1 or len(passwords) > 1:
        raise ValueError("the addresses disagree on the database or the password: give them once, or the same each time")
    return SentinelAddress(tuple(sentinels), dbs.pop() if dbs else 0, passwords.pop() if passwords else None)


def check_url(url: str) -> str:
    """``url`` if payq can use it; ``ValueError`` naming the rule otherwise."""
    if is_sentinel(url):
        parse_sentinel(url)
        return url
    scheme = urlsplit(url).scheme.lower()
    if scheme not in DIRECT_SCHEMES:
        raise ValueError(f"must be redis://, rediss://, unix:// or sentinel://HOST:PORT;sentinel://HOST:PORT…, not {scheme or 'no'} scheme")
    return url


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and error messages (each address of a Sentinel URL)."""
    return ";".join(_redact_one(part) for part in url.split(";"))


def _redact_one(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{username}:***@{hostport}"))
