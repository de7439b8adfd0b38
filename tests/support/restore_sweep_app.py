"""payq's Celery app with kombu's sweep for abandoned messages made to run every second: a test-only stand-in for a fix.

kombu (5.7) looks for unacknowledged messages older than the visibility
timeout every ``unacked_restore_interval`` seconds (10) but scans Redis only
on every ``unacked_restore_throttle``-th look (10): every 100 s. So a killed
worker's jobs come back after up to ``visibility_timeout`` + 100 s, not after
the visibility timeout that ``config/celery.py`` promises (measured: 100 s with
a 10 s timeout). ``tests/faults/test_killed_workers.py`` pins that with a
strict xfail; the scenarios that kill workers or restart Redis run their
workers with ``celery -A tests.support.restore_sweep_app`` so they can prove
the rest (nothing lost, duplicates only from jobs in flight) in a bounded time.

Once ``config/celery.py`` sets these options itself, this module changes
nothing, and can go.
"""

from __future__ import annotations

from typing import Any

from workers.app import app

SWEEP_OPTIONS: dict[str, Any] = {
    "unacked_restore_interval": 1,  # look every second ...
    "unacked_restore_throttle": 1,  # ... and scan on every look
    # kombu's sweep lock expires after 300 s: a worker killed while holding it would stop every sweep that long
    "unacked_mutex_expire": 30,
}

app.conf.broker_transport_options = {**app.conf.broker_transport_options, **SWEEP_OPTIONS}
