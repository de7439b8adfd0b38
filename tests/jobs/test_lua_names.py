"""Lua takes the strings Python owns (states, verdicts, reasons, operations, ...) from one source: ``--#include names``.

The fragment is generated from the enums (:data:`tasks.redis.scripts.NAMES`); these
tests show that every name a script uses exists, that a script using names
includes them, and, on a real Redis, that a misspelt name fails the script
instead of comparing against nil.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis

from tasks.redis.scripts import NAMES, every_script, names, path_of, source

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


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_that_uses_names_includes_them_once(script: str) -> None:
    text = source(script)
    if USE.search(text):
        assert text.count("local STATE = ") == 1


def test_the_names_are_the_enums_values_in_redis_and_a_misspelt_one_fails_the_script(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.eval(names() + "return {STATE.DEAD, REASON.CAPTURE_FAILED, OP.FEEDBACK, VERDICT.RUN}", 0) == [
            "dead", "capture-failed", "feedback", "run"]
        with pytest.raises(redis.ResponseError, match=r"no STATE\.DEAD_LETTERED"):
            client.eval(names() + "return STATE.DEAD_LETTERED", 0)
    finally:
        client.close()


# the strings Python owns that never name a field: a script spells none of them out
_OWNED = {m.value for table in ("STATE", "VERDICT", "CAUSE", "REASON", "KIND", "RULE") for m in NAMES[table]}


@pytest.mark.parametrize("path", every_script(), ids=lambda p: str(p.relative_to(TASKS)))
def test_no_script_spells_out_a_state_verdict_cause_reason_kind_or_rule(path: Path) -> None:
    code = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
    assert sorted({lit for lit in re.findall(r"'([a-z][a-z-]*)'", code) if lit in _OWNED}) == []
