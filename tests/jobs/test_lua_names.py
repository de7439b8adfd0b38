"""Lua takes the strings Python owns (states, verdicts, reasons, operations, ...) from one source: ``--#include names``.

A name (``STATE.DEAD``) is replaced by its enum's value when the script is read
(:func:`tasks.redis.scripts.resolve`); ``--#include names`` brings the other
constants. These tests show that every name a script uses exists, that no name
is left for Lua to look up, that a script using the constants includes them, and
that a misspelt name fails when the script is read, before Redis sees it, instead
of comparing against nil.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis

from tasks.redis.scripts import NAMES, UnknownName, every_script, names, path_of, resolve, source

TASKS = Path(__file__).resolve().parents[2] / "tasks"
USE = re.compile(r"\b(" + "|".join(NAMES) + r")\.([A-Z_]+)\b")
SCRIPTS = sorted(p.stem for p in every_script() if p.parent.name == "lua")


def test_every_script_and_fragment_has_a_name_of_its_own_beside_its_package() -> None:
    found = every_script()
    assert {p.parent.parent.name for p in found if p.parent.name == "lua"} == {"store", "pacing", "notify"}
    assert [path_of(str(p.relative_to(p.parents[1] if p.parent.name == "lib" else p.parent))) for p in found] == found


@pytest.mark.parametrize("path", every_script(), ids=lambda p: str(p.relative_to(TASKS)))
def test_every_name_a_script_uses_is_a_member_of_its_enum(path: Path) -> None:
    missing = [f"{table}.{member}" for table, member in USE.findall(path.read_text()) if member not in NAMES[table].__members__]
    assert missing == []


CONSTANTS = re.compile(r"\b(SUCCESSES_KEPT|WAKE|JOB_PREFIX|INFLIGHT_PREFIX)\b")


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_reads_with_every_name_replaced_and_includes_the_constants_once_if_it_uses_them(script: str) -> None:
    text = source(script)
    assert USE.findall(text) == []
    if CONSTANTS.search(text.replace(names(), "")):
        assert text.count(names()) == 1


def test_the_names_are_the_enums_values_in_redis_and_a_misspelt_one_fails_when_read(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.eval(resolve(names() + "return {STATE.DEAD, REASON.CAPTURE_FAILED, OP.FEEDBACK, VERDICT.RUN}"), 0) == [
            "dead", "capture-failed", "feedback", "run"]
    finally:
        client.close()
    with pytest.raises(UnknownName, match=r"begin: STATE\.DEAD_LETTERED is not a member of JobState") as raised:
        resolve("if state == STATE.DEAD_LETTERED then return 1 end", "begin")
    assert (raised.value.name, raised.value.script) == ("STATE.DEAD_LETTERED", "begin")


# the strings Python owns that never name a field: a script spells none of them out
_OWNED = {m.value for table in ("STATE", "VERDICT", "CAUSE", "REASON", "KIND", "RULE") for m in NAMES[table]}


@pytest.mark.parametrize("path", every_script(), ids=lambda p: str(p.relative_to(TASKS)))
def test_no_script_spells_out_a_state_verdict_cause_reason_kind_or_rule(path: Path) -> None:
    code = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
    assert sorted({lit for lit in re.findall(r"'([a-z][a-z-]*)'", code) if lit in _OWNED}) == []
