"""Running the ``payq`` command in tests: in-process (fast) or as the real console script."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from workers.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
PAYQ = REPO_ROOT / ".venv" / "bin" / "payq"


@dataclass(frozen=True)
class Ran:
    """What a ``payq`` run left behind: exit code, stdout, stderr."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON (the ``--json`` forms)."""
        return json.loads(self.stdout)


def cli_env(redis_url: str, **extra: str) -> dict[str, str]:
    """``PAYQ_*`` for a command against ``redis_url``, impatient with an unreachable Redis so faults show fast."""
    return {"PAYQ_REDIS_URL": redis_url, "PAYQ_REDIS_RETRY_SECONDS": "0.3", **extra}


def invoke(redis_url: str, *args: str, **extra: str) -> Ran:
    """Run ``payq *args`` in this process with click's runner (the exit code comes from ``sys.exit``)."""
    result = CliRunner().invoke(main, list(args), env=cli_env(redis_url, **extra), catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def payq_command() -> list[str]:
    """The console script, as store backends and operators run it."""
    return [str(PAYQ)]


def run(redis_url: str, *args: str, timeout: float = 60, **extra: str) -> Ran:
    """Run the real ``payq`` console script in a subprocess."""
    done = subprocess.run(
        [*payq_command(), *args], cwd=REPO_ROOT, env={**os.environ, **cli_env(redis_url, **extra)},
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)
