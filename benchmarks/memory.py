"""``python -m benchmarks.memory [--trips N | --soak SECONDS]``: what Redis keeps per settled trip, with every setting at its default.

Settles N trips (a capture and its chained report, UUID trip ids) through
payq's workers against a private redis-server and the sandbox, and prints
``used_memory`` per trip and each kind of key's count and mean ``MEMORY
USAGE``. With ``BENCH_PAYQ_TREE`` set to another checkout the workers are that
checkout's (they write the settled records): before and after in one sitting.
The measuring itself is :mod:`tests.support.memory`, which the regression
test (``tests/jobs/test_memory_per_trip.py``) shares. ``--soak SECONDS`` runs
steady load instead and prints the workers' and Redis's memory over time
(:mod:`benchmarks.soak`).
"""

from __future__ import annotations

import argparse
import json
import os

from benchmarks.soak import running, soak
from benchmarks.workers import PAYQ_TREE
from tests.support.memory import Footprint, measure, without_records


def run_memory(trips: int) -> Footprint:
    """Settle ``trips`` trips on a fresh stack with the default settings; Redis's growth for them."""
    with running() as live:
        return without_records(live.stack.client, measure(live.producer, live.stack.client, trips, live.reported, timeout=60 + trips / 20))


def main() -> int:
    """Measure and print one line of figures, then the key kinds as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--trips", type=int, default=3000, help="trips to settle (default 3000; --trips 1000 for a quick look)")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="instead: steady load for this long, a line of figures every --every seconds")
    parser.add_argument("--rate", type=float, default=50.0, help="with --soak: trips a second (default 50: 100 jobs/s)")
    parser.add_argument("--every", type=float, default=15.0, help="with --soak: seconds between lines (default 15)")
    args = parser.parse_args()
    if args.soak:
        soak(args.soak, args.rate, args.every)
        return 0
    found = run_memory(args.trips)
    print(f"workers of {os.environ.get(PAYQ_TREE) or 'this tree'}: {found.trips} trips, {found.per_trip:,.0f} bytes of used_memory per settled trip,"
          f" of which the books {found.books_per_trip or 0:,.0f} and the job records {found.per_trip - (found.books_per_trip or 0):,.0f}")
    print(json.dumps({kind: {"keys": n, "mean_memory_usage": round(size)} for kind, (n, size) in sorted(found.kinds.items())}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
