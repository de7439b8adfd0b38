"""payq's Celery app with the benchmark tweaks named in ``BENCH_TWEAKS`` applied: ``celery -A benchmarks.variant worker``."""

from __future__ import annotations

import os

from benchmarks.tweaks import apply
from workers.app import app

apply(app, [name for name in os.environ.get("BENCH_TWEAKS", "").split(",") if name])

__all__ = ["app"]
