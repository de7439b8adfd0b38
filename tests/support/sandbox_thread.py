"""``served_in_a_thread``: a sandbox app built in the test's own process, served over real HTTP on its own event loop.

For tests that need the app's insides (an injected verifier, its state) and
still want real HTTP; :class:`tests.support.sandbox.SandboxProcess` is the
sandbox as it is run.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sandbox.server import serve


@contextmanager
def served_in_a_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free port on its own event loop; yields the base URL."""
    announced: queue.Queue[str] = queue.Queue()
    handles: dict[str, Any] = {}

    async def main() -> None:
        handles["loop"], handles["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await serve(app, "127.0.0.1", 0, handles["stop"], announce=announced.put)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    line = announced.get(timeout=10)
    try:
        yield line.rsplit(" ", 1)[1]
    finally:
        handles["loop"].call_soon_threadsafe(handles["stop"].set)
        thread.join(10)
