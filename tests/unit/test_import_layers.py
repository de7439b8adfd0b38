"""Imports run one way: ``config`` <- ``payapi`` <- ``tasks`` <- ``workers`` | ``payq``; inside ``tasks``, concerns in layers; the sandbox uses only ``payapi``.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and
import-linter checks them statically. The second test plants reverse imports
in a copy of the tree and shows each one is caught, so the first cannot pass
by checking nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "payapi", "tasks", "workers", "payq", "sandbox")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)


def test_every_import_runs_one_way() -> None:
    ran = lint_imports(REPO_ROOT)

    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert "5 kept, 0 broken" in ran.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        ("tasks/jobs/decide.py", "import workers.app", "layers"),
        # inside tasks: each concern imports only the ones below it
        ("tasks/states.py", "from tasks.redis import keys", "inside tasks"),
        ("tasks/redis/keys.py", "import tasks.jobs.books", "inside tasks"),
        ("tasks/jobs/decide.py", "from tasks.pacing import rules", "inside tasks"),
        ("tasks/notify/outbox.py", "import tasks.store.records", "inside tasks"),
        ("tasks/pacing/pacer.py", "from tasks.store.leases import LeaseStore", "inside tasks"),
        ("tasks/pacing/endpoints.py", "from tasks.notify import events", "inside tasks"),
        ("tasks/store/deadletters.py", "from tasks.producer import prepare", "inside tasks"),
        ("tasks/stats.py", "from tasks.producer import Producer", "inside tasks"),
        ("config/celery.py", "from tasks.producer import Producer", "layers"),
        ("payapi/client.py", "import tasks.store.records", "layers"),
        ("sandbox/ledger.py", "from tasks import keys", "the sandbox uses only payapi"),
        ("tasks/stats.py", "import sandbox.server", "nothing below workers and payq uses the sandbox"),
        ("workers/housekeeping.py", "from payq.views import job_view", "workers is not allowed to import payq"),
        ("payq/views.py", "import workers.app", "payq is not allowed to import workers"),
        ("payq/serve/console/listing.py", "from payq.cli import operator", "payq.serve is not allowed to import payq.cli"),
        ("payq/durations.py", "from payq.serve import access", "payq.durations is not allowed to import payq.serve"),
        ("payq/serve/access.py", "from payq.stack import plan", "payq.serve is not allowed to import payq.stack"),
    ],
)
def test_a_planted_reverse_import_breaks_the_contract(tmp_path: Path, module: str, planted: str, broken: str) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{planted}  # planted by the test\n")

    ran = lint_imports(tmp_path)

    assert ran.returncode != 0, ran.stdout[-3000:]
    assert f"{broken}" in ran.stdout and "BROKEN" in ran.stdout
