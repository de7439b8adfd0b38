"""The one way tests run the ``payq`` command: the real console script in a subprocess, or in-process (fast).

Both run against a given Redis with none of the calling environment's
``PAYQ_*`` variables (and the subprocess in an empty directory, so no ``.env``
is read), impatient with an unreachable Redis so faults show fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from payq.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
# the console script installed beside the interpreter running the tests (the venv's)
PAYQ = Path(sys.executable).with_name("payq")
PayqRunner = Callable[..., subprocess.CompletedProcess[str]]  # the ``payq`` fixture: run_payq bound to a test's Redis
_EMPTY_DIR = Path(tempfile.mkdtemp(prefix="payq-cli-"))


@dataclass(frozen=True)
class Ran:
    """What a ``payq`` run left behind: exit code, stdout, stderr."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON (the ``--json`` forms)."""
        return json.loads(self.stdout)


def cli_env(redis_url: str, *, retry_seconds: float = 0.3, **extra: str) -> dict[str, str]:
    """``PAYQ_*`` for a command against ``redis_url``; ``extra`` adds variables (any name)."""
    return {"PAYQ_REDIS_URL": redis_url, "PAYQ_REDIS_RETRY_SECONDS": str(retry_seconds), **extra}


def invoke(redis_url: str, *args: str, **extra: str) -> Ran:
    """Run ``payq *args`` in this process with click's runner (the exit code comes from ``sys.exit``)."""
    result = CliRunner().invoke(main, list(args), env=cli_env(redis_url, **extra), catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def payq_command() -> list[str]:
    """The console script, as store backends and operators run it."""
    return [str(PAYQ)]


def run_payq(
    redis_url: str, *args: str | bytes, env: dict[str, str] | None = None, stdin: str | bytes | None = None,
    cwd: Path | None = None, timeout: float = 60, retry_seconds: float = 0.3, text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run the real ``payq`` console script; ``env`` adds variables, ``text=False`` for bytes in and out."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYQ_")}
    return subprocess.run(
        [str(PAYQ), *args], cwd=cwd or _EMPTY_DIR, env={**base, **cli_env(redis_url, retry_seconds=retry_seconds), **(env or {})},
        input=stdin, capture_output=True, text=text, timeout=timeout, check=False,
    )


def run(redis_url: str, *args: str, timeout: float = 60, **extra: str) -> Ran:
    """:func:`run_payq` with its result as a :class:`Ran`."""
    done = run_payq(redis_url, *args, env=extra, timeout=timeout)
    return Ran(done.returncode, done.stdout, done.stderr)
