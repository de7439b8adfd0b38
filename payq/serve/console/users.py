"""The console's users: who they are, what their role lets them do, and their CSRF tokens.

``PAYQ_CONSOLE_USERS`` names each user with a role and a bcrypt hash of the
password; ``PAYQ_CONSOLE_BASIC_AUTH`` (``user:password``) adds one operator
whose password is that text. ``PAYQ_CONSOLE_READ_ONLY`` makes every user a
viewer on this process. Nothing here reads a request: the guard does.

bcrypt is slow on purpose (a quarter to half a second at the default cost),
and HTTP basic auth sends the password with every request, a page's
stylesheet and icon included. A password that verified is remembered for a
few minutes as an HMAC under a key made when the process starts, never as
the password: a page costs one bcrypt check, not three.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import bcrypt

from config.settings import Settings

VERIFIED_FOR = 300.0  # seconds a verified password is remembered
_REMEMBERED = 1024  # verified logins kept at most (the oldest forgotten first)
CSRF_DAY = 86400  # a CSRF token is made per user and per UTC day; the day before's is still taken (a page left open overnight)


class Role(StrEnum):
    """What a console user may do: a viewer reads every page; an operator also replays, purges and lifts pauses."""

    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class User:
    """A configured user: name, role, and what the password is checked against (a bcrypt hash, or the basic-auth text)."""

    name: str
    role: Role
    secret: str
    hashed: bool

    def matches(self, password: str) -> bool:
        """Whether ``password`` is this user's: bcrypt's check, or a constant-time comparison for the basic-auth user."""
        given = password.encode()
        if self.hashed:
            # bcrypt takes at most 72 bytes of a password and refuses more (bcrypt 5): such a password is not this one
            return len(given) <= 72 and bcrypt.checkpw(given, self.secret.encode())
        return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(self.secret.encode()).digest())


class Users:
    """The console's users for one process: who is who, and the passwords verified lately."""

    def __init__(self, users: dict[str, User], *, read_only: bool) -> None:
        self._users = users
        self.read_only = read_only
        self._key = secrets.token_bytes(32)  # this process's alone: what it remembers means nothing elsewhere
        self._verified: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Users:
        """The users ``settings`` name (none: the console is off)."""
        users = {name: User(name, Role(entry.role), entry.hash.get_secret_value(), hashed=True)
                 for name, entry in settings.console_users.items()}
        if settings.console_basic_auth is not None:
            name, _, password = settings.console_basic_auth.get_secret_value().partition(":")
            users[name] = User(name, Role.OPERATOR, password, hashed=False)
        return cls(users, read_only=settings.console_read_only)

    def __bool__(self) -> bool:
        return bool(self._users)

    def verify(self, name: str, password: str, now: float) -> User | None:
        """The user ``name`` if ``password`` is theirs, else None (an unknown name costs a bcrypt check too: no timing tells it)."""
        user = self._users.get(name)
        remembered = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        with self._lock:
            until = self._verified.get(remembered)
        if user is not None and until is not None and until > now:
            return user
        if user is None:
            _dummy().matches(password)
            return None
        if not user.matches(password):
            return None
        with self._lock:
            self._verified[remembered] = now + VERIFIED_FOR
            self._verified.move_to_end(remembered)
            while len(self._verified) > _REMEMBERED:
                self._verified.popitem(last=False)
        return user

    def role_of(self, user: User) -> Role:
        """The role ``user`` has on this process: theirs, or viewer while ``PAYQ_CONSOLE_READ_ONLY`` is on."""
        return Role.VIEWER if self.read_only else user.role


@cache
def _dummy() -> User:
    """A user whose hash is of nothing anyone knows, checked for an unknown name: the answer takes as long as for a known one."""
    return User("", Role.VIEWER, bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt()).decode(), hashed=True)


def csrf_token(user: User, day: int) -> str:
    """The CSRF token of ``user``'s forms on UTC ``day`` (epoch days): an HMAC of the name and the day, keyed by their secret.

    Every ``payq serve`` with the same users makes the same token, so a page
    served by one is accepted by another behind the same proxy; a new password
    (a new hash) voids the old tokens, and each day brings a new one.
    """
    key = hashlib.sha256(b"payq console csrf\0" + user.secret.encode()).digest()
    return hmac.new(key, f"{user.name}\0{day}".encode(), hashlib.sha256).hexdigest()


def csrf_day(now: float) -> int:
    """The UTC day ``now`` falls on, as a CSRF token counts days."""
    return int(now // CSRF_DAY)


def accepts(user: User, token: str, now: float) -> bool:
    """Whether ``token`` is ``user``'s for today or yesterday (compared in constant time)."""
    today = csrf_day(now)
    found = False
    for day in (today, today - 1):
        found |= hmac.compare_digest(token.encode(), csrf_token(user, day).encode())
    return found


def hash_password(password: str) -> str:
    """A bcrypt hash of ``password`` at bcrypt's default cost (12): what ``payq console user`` prints."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
