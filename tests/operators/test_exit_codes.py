"""Exit codes every operator command keeps: 2 invalid input, 1 Redis unreachable with a one-line cause."""

from __future__ import annotations

import pytest

from tests.support.payq_cli import invoke, run
from tests.support.ports import free_port


@pytest.fixture
def dead_redis_url() -> str:
    """A Redis URL nothing listens on."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize("args", [
    ("dlq", "list"),
    ("dlq", "list", "--json"),
    ("dlq", "show", "cancel:s1:t1"),
    ("dlq", "replay", "--all"),
    ("dlq", "purge", "--all", "--yes"),
    ("job", "capture:s1:t1", "--json"),
    ("stats", "--json"),
])
def test_redis_unreachable_exits_1_with_one_line_naming_the_cause(dead_redis_url: str, args: tuple[str, ...]) -> None:
    ran = invoke(dead_redis_url, *args)

    assert ran.code == 1
    assert ran.stdout == ""
    [line] = [s for s in ran.stderr.splitlines() if s != "replaying"]
    assert line.startswith(f"error: cannot reach Redis at {dead_redis_url}: ")


def test_the_console_script_exits_1_when_redis_is_unreachable(dead_redis_url: str) -> None:
    ran = run(dead_redis_url, "stats")

    assert ran.code == 1
    assert ran.stderr.startswith("error: cannot reach Redis at ")
    assert len(ran.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "says"), [
    (("dlq", "list", "--since", "3x"), "--since: must be a duration"),
    (("dlq", "list", "--reason", "bored"), "Invalid value for '--reason'"),
    (("dlq", "list", "--operation", "charge"), "Invalid value for '--operation'"),
    (("dlq", "show"), "Missing argument 'ID'"),
    (("job",), "Missing argument 'ID'"),
    (("metrics",), "Missing option '--port'"),
    (("metrics", "--port", "70000"), "Invalid value for '--port'"),
])
def test_invalid_input_exits_2_naming_the_problem(redis_url: str, args: tuple[str, ...], says: str) -> None:
    ran = invoke(redis_url, *args)

    assert ran.code == 2
    assert says in ran.stderr
