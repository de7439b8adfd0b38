"""Finding the processes a test started, through an environment marker every descendant inherits."""

from __future__ import annotations

import os
import sys
from pathlib import Path

MARKER_VARIABLE = "PAYQ_TEST_PROCESS_MARKER"
PROC = Path("/proc")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


def processes_with(marker: str) -> dict[int, str]:
    """pid -> command line of every live process whose environment holds ``marker``.

    Linux only (``/proc``); the callers skip elsewhere.
    """
    found: dict[int, str] = {}
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and alive(int(entry.name)):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def on_linux() -> bool:
    """Whether ``/proc`` can tell us about processes."""
    return sys.platform.startswith("linux") and PROC.is_dir()
