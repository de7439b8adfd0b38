"""payq's Redis scripts: ``tasks/lua/*.lua``, read once and registered per client.

A script shares a fragment with ``--#include lib/<name>.lua`` on a line of its
own; the fragment's text replaces that line (each at most once per script).
Redis runs a script whole or not at all, and the append-only file logs it as
one write, so every step of a job that must not be half-done is one script.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

_DIR = Path(__file__).with_name("lua")
_INCLUDE = re.compile(r"^--#include (\S+)\s*$", re.MULTILINE)


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` with its includes expanded."""
    included: set[str] = set()

    def expand(match: re.Match[str]) -> str:
        fragment = match.group(1)
        if fragment in included:
            return ""
        included.add(fragment)
        return _INCLUDE.sub(expand, (_DIR / fragment).read_text())

    return _INCLUDE.sub(expand, (_DIR / f"{name}.lua").read_text())


def register(client: redis.Redis, name: str) -> Script:
    """``lua/<name>.lua`` as a script callable on ``client`` (sent by its SHA after the first call)."""
    return client.register_script(source(name))
