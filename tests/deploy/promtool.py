"""promtool, Debian's (package ``prometheus``, installed by scripts/system-deps.sh): where it is, and running it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "payq-rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "payq-rules.test.yml"
DASHBOARD = PROMETHEUS_DIR / "payq-dashboard.json"


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS`` in ``cwd``; skips the test where promtool is not installed (``make test`` installs it)."""
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed: bash scripts/system-deps.sh installs Debian's prometheus package (make test runs it)")
    return subprocess.run([found, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
