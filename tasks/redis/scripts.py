"""payq's Redis scripts: the ``lua/*.lua`` beside the package that runs each, read once and registered per client.

A script is named by its file's stem, unique across ``tasks`` (``enqueue`` is
``tasks/store/lua/enqueue.lua``, ``pace_cut`` ``tasks/pacing/lua/pace_cut.lua``).
It shares a fragment with ``--#include lib/<name>.lua`` on a line of its own,
found in the ``lua/lib/`` of whichever package owns it; the fragment's text
replaces that line (each at most once per script).
A script writes the strings Python owns (job states, BEGIN verdicts, deferral
causes, dead-letter reasons, failure kinds, trip rules, operations) by name,
``STATE.DEAD``, never ``'dead'``: each name is replaced by its value when the
script is read, so the value is a constant of the compiled script, and a name
that does not exist raises then (:class:`UnknownName`), before Redis sees the
script. (They were Lua tables built on every call: seven tables with their
metatables, garbage for Redis's collector at every BEGIN and outcome.)
``--#include names`` is generated instead of read: the other constants Python
owns (how long the pace's counts are kept, the stream that wakes idle workers,
and the prefixes of job records, in-flight lists, lanes and rings).
Redis runs a script whole or not at all, and the append-only file logs it as
one write, so every step of a job that must not be half-done is one script.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

from payapi.operations import Operation
from payapi.outcomes import FailureKind
from tasks.redis.keys import INFLIGHT_PREFIX, JOB_PREFIX, LANE_PREFIX, RING_PREFIX, SUCCESSES_KEPT, WAKE
from tasks.states import DeadLetterReason, DeferCause, JobState, TripRule, Verdict

# every package of tasks keeps its scripts in a lua/ folder of its own
_TASKS = Path(__file__).resolve().parents[1]
_INCLUDE = re.compile(r"^--#include (\S+)\s*$", re.MULTILINE)
NAMES: dict[str, type[StrEnum]] = {
    "STATE": JobState, "VERDICT": Verdict, "CAUSE": DeferCause, "REASON": DeadLetterReason, "KIND": FailureKind,
    "RULE": TripRule, "OP": Operation,
}


_NAME = re.compile(r"\b(" + "|".join(NAMES) + r")\.([A-Za-z_]+)\b")


class UnknownName(ValueError):
    """A script names a member its enum does not have (``STATE.DEAD_LETTERED``)."""

    def __init__(self, name: str, script: str) -> None:
        super().__init__(f"{script}: {name} is not a member of {NAMES[name.partition('.')[0]].__name__}")
        self.name = name
        self.script = script


def resolve(text: str, script: str = "<script>") -> str:
    """``text`` with every ``TABLE.MEMBER`` of :data:`NAMES` replaced by its value as a Lua string; :class:`UnknownName` for a missing one."""

    def value(match: re.Match[str]) -> str:
        table, member = match.groups()
        found = NAMES[table].__members__.get(member)
        if found is None:
            raise UnknownName(f"{table}.{member}", script)
        return f"'{found.value}'"

    return _NAME.sub(value, text)


def names() -> str:
    """The ``names`` fragment: the constants Python owns that are not an enum's (:func:`resolve` replaces those)."""
    # as strings: a Lua number passed to redis.call is formatted anew each time (printf's %.17g)
    lines = [f"local SUCCESSES_KEPT = '{SUCCESSES_KEPT}'"]
    lines.append(f"local WAKE = '{WAKE}'")
    lines.append(f"local JOB_PREFIX = '{JOB_PREFIX}'")
    lines.append(f"local INFLIGHT_PREFIX = '{INFLIGHT_PREFIX}'")
    lines.append(f"local LANE_PREFIX = '{LANE_PREFIX}'")
    lines.append(f"local RING_PREFIX = '{RING_PREFIX}'")
    return "\n".join(lines) + "\n"


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` with its includes expanded."""
    included: set[str] = set()

    def expand(match: re.Match[str]) -> str:
        fragment = match.group(1)
        if fragment in included:
            return ""
        included.add(fragment)
        return names() if fragment == "names" else _INCLUDE.sub(expand, path_of(fragment).read_text())

    return resolve(_INCLUDE.sub(expand, path_of(f"{name}.lua").read_text()), name)


def path_of(relative: str) -> Path:
    """The file ``lua/<relative>`` of whichever package of ``tasks`` has it (names are unique: a test checks)."""
    found = sorted(_TASKS.glob(f"*/lua/{relative}"))
    if len(found) != 1:
        raise FileNotFoundError(f"{len(found)} scripts named lua/{relative} in {_TASKS}: {found}")
    return found[0]


def every_script() -> list[Path]:
    """Every script and fragment of ``tasks``, each package's ``lua/`` folder."""
    return sorted(_TASKS.glob("*/lua/**/*.lua"))


def sha(name: str) -> str:
    """The SHA1 Redis knows ``lua/<name>.lua`` by (``EVALSHA``), for a caller that sends the command itself."""
    return hashlib.sha1(source(name).encode()).hexdigest()


def register(client: redis.Redis, name: str) -> Script:
    """``lua/<name>.lua`` as a script callable on ``client`` (sent by its SHA after the first call)."""
    return client.register_script(source(name))
