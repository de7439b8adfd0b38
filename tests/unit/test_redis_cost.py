"""The Redis-cost scenario's reading of the slowlog: which command or script an entry is, and what is left out."""

from __future__ import annotations

import pytest

from benchmarks.redis_cost import breakdown, command_of, script_names
from tasks.redis import scripts

NAMES = {scripts.sha("begin"): "begin"}


@pytest.mark.parametrize(("command", "expected"), [
    (f"EVALSHA {scripts.sha('begin')} 3 a b c", "script begin"),
    (f"evalsha {scripts.sha('begin').upper()} 0", "script begin"),
    ("EVALSHA 0123456789abcdef0123456789abcdef01234567 0", "script 0123456789ab"),
    ("EVAL return 1 0", "script (sent whole: EVAL)"),
    ("BRPOP payments.capture 1", "brpop"),
    ("CLIENT SETNAME x", "client setname"),
    ("", "?"),
])
def test_an_entry_is_named_by_its_command_or_its_script(command: str, expected: str) -> None:
    assert command_of(command.split(" ", 2) if command else [], NAMES) == expected


def test_commands_a_script_called_and_the_scenario_s_own_are_left_out() -> None:
    entries = [
        {"duration": 100, "command": f"EVALSHA {scripts.sha('begin')} 0".encode(), "client_address": b"127.0.0.1:5000"},
        {"duration": 7, "command": b"HSET k f v", "client_address": b"?:0"},  # inside the script above
        {"duration": 3, "command": b"SLOWLOG RESET", "client_address": b"127.0.0.1:5001"},
        {"duration": 5, "command": b"BRPOP q 1", "client_address": b"127.0.0.1:5002"},
        {"duration": 7, "command": b"BRPOP q 1", "client_address": b"127.0.0.1:5002"},
    ]
    assert breakdown(entries, NAMES) == {"script begin": {"calls": 1, "usec": 100}, "brpop": {"calls": 2, "usec": 12}}


def test_every_script_payq_sends_has_a_name_and_no_fragment_is_one() -> None:
    names = script_names()
    top = {path.stem for path in scripts.every_script() if path.parent.name == "lua"}
    assert sorted(names.values()) == sorted(top)
    assert {"begin", "enqueue", "fetch"} <= top
    assert not top & {path.stem for path in scripts.every_script() if path.parent.name == "lib"}
