"""Scenario 6: pacing. The API limits capture and feedback to R calls/s each; N captures (and their reports) queued at once.

The sandbox (0 ms latency) lets at most ``R`` = 30 calls per endpoint through in any sliding
one-second window, for capture and for feedback each, and answers the others at once
``429 Retry-After: T`` with ``T`` = 2 s (``POST /admin/faults`` with ``rate_limits``). ``N``
captures (1,200; ``--quick`` 300) are queued at once; each capture that succeeds chains its
payment-status report, so feedback also gets ``N`` calls at ``R``. Four runs, one after the other,
each with its own workers and a fresh Redis and sandbox:

- **payq, learned**: payq is not told the limit (no ``PAYQ_RATE_LIMITS``); it learns it from the
  first 429 (a shared pause of ``Retry-After``, then 90% of the rate the API accepted, growing back
  along its cubic curve). payq's default workers (threads 4×32).
- **payq, configured**: ``PAYQ_RATE_LIMITS='{"capture": R, "feedback": R}'`` (paced at 93% of it).
- **bare Celery** (:mod:`benchmarks.paced_celery`, threads 4×32 like payq): Celery's ``rate_limit``
  task option on the capture and report tasks. It is a token bucket in each worker process, so
  each of the P processes gets R / P (``7.5/s`` with 4). A 429 is retried with
  ``self.retry(countdown=Retry-After)`` and no retry limit, so nothing is lost; nothing else in
  Celery knows about it.
- **Dramatiq** (:mod:`benchmarks.paced_dramatiq`, threads 2×8, its fastest shape at 0 ms):
  a ``WindowRateLimiter(limit=R, window=1)`` per endpoint on a Redis backend, shared by every
  worker process, used the way its cookbook does: ``with LIMITER.acquire():`` raises
  ``RateLimitExceeded`` when the window is full, and the ``Retries`` middleware retries the message
  with exponential backoff (the actors set 1 s, the window, doubling to 5 s, jittered;
  ``max_retries=None``). No thread blocks on the limiter. A 429 raises
  ``dramatiq.Retry(delay=Retry-After)``.

Every system chains the report on the capture's 200, and each task or actor has its own queue.

Measured from the sandbox's request log, for each run:

- **time to settle**: from the moment the captures are queued to the last accepted (200) capture
  or report of the ``N`` trips. The **ideal** is ``N / R`` (the captures and the reports overlap,
  each endpoint limited separately: the reports follow their captures within milliseconds), plus
  ``T`` for the learned run: the one pause that learning the limit costs. The figure is the ratio.
- **429s as a share of calls**: 429 answers over every capture and report call of the run.
- **duplicate calls**: a call to an endpoint for a trip whose earlier call to that endpoint was
  already accepted (200). Calls answered 429 and retried are not duplicates; trips still without
  an accepted capture or report at the end are counted as **lost**.
- **fresh jobs' wait**: while the backlog drains, a trickle of cancels (5/s, an endpoint without a
  limit) is enqueued through each system's own client (payq's producer; the peers' messages written
  the way their clients write them); each one's wait is its call's arrival at the API minus the
  moment it was enqueued, for the cancels enqueued between the start and the last accepted call.
  A cancel never called by then counts with its wait so far.
- the largest number of calls let through in any one-second window (the sandbox keeps it at ``R``),
  429 bursts per endpoint (429s less than a second apart are one burst: for payq one burst is one
  lesson), the accepted capture rate over the middle 80% of the captures, the CPU the workers used, and
  (in the JSON) a timeline: accepted captures, accepted reports and 429s in each 5 s.

Targets (issue #14): learned, within 1.25x of the ideal with 429s under 5% of calls; configured,
no 429 and within 1.1x of ``N / R``; no duplicate call; fresh jobs' wait p99 under 2 s.
The peers have no targets: they stand beside payq for comparison.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks import paced_celery, paced_dramatiq, publish
from benchmarks.calls import CANCEL, CAPTURE, FEEDBACK, Call, CallLog
from benchmarks.figures import ms, summary_ms
from benchmarks.live import LivePayq
from benchmarks.processes import LoadMeter, cpu_seconds
from benchmarks.stack import Stack
from benchmarks.workers import Fleet, Shape, start_bare_celery, start_dramatiq
from sandbox.ratelimit import most_in_one_second
from tasks.pacing.rules import Learned, pace_at
from tasks.redis import keys

RATE = 30           # R: calls per second the sandbox lets through per limited endpoint
RETRY_AFTER = 2     # T: seconds, the Retry-After of its 429s
FRESH_PER_S = 5.0   # cancels per second enqueued while the backlog drains
LIMITED = (CAPTURE, FEEDBACK)
SYSTEMS = ("payq-learned", "payq-configured", "bare-celery", "dramatiq")


def limits_script(rate: int = RATE, retry_after: int = RETRY_AFTER) -> dict[str, Any]:
    """The sandbox's fault script: no faults, capture and feedback limited to ``rate`` a second."""
    limit = {"per_second": rate, "retry_after": retry_after}
    return {"rules": [], "rate_limits": {"capture": limit, "feedback": limit}}


class Trickle(threading.Thread):
    """Enqueues one fresh job (a cancel of a new trip) ``rate`` times a second through ``enqueue`` until stopped."""

    def __init__(self, enqueue: Callable[[str], None], rate: float) -> None:
        super().__init__(name="fresh-cancels", daemon=True)
        self.enqueue = enqueue
        self.rate = rate
        self.enqueued: dict[str, float] = {}
        self._stop_event = threading.Event()
        self._tag = uuid.uuid4().hex[:6]

    def run(self) -> None:
        """Enqueue on a fixed schedule."""
        start = time.monotonic()
        index = 0
        while not self._stop_event.wait(max(0.0, start + index / self.rate - time.monotonic())):
            trip = f"fresh-{self._tag}-{index}"
            self.enqueued[trip] = time.time()
            self.enqueue(trip)
            index += 1

    def stop(self) -> None:
        """Stop enqueueing and wait for the thread."""
        self._stop_event.set()
        self.join(timeout=10)

    def waits(self, calls: list[Call], since: float, until: float, now: float, path: str = CANCEL) -> tuple[list[float], int]:
        """Seconds from enqueue to the API call (to ``path``) for the jobs enqueued in [since, until]; and how many were never called
        (they count with ``now`` minus their enqueue)."""
        arrived: dict[str, float] = {}
        for call in calls:
            if call.path == path:
                arrived.setdefault(call.trip, call.time)
        waits, never = [], 0
        for trip, at in self.enqueued.items():
            if since <= at <= until:
                if trip in arrived:
                    waits.append(arrived[trip] - at)
                else:
                    waits.append(now - at)
                    never += 1
        return waits, never


def run_pacing(stack: Stack, shape: Shape, dramatiq_shape: Shape, captures: int, *, tweaks: tuple[str, ...] = (),
               say: Any = print) -> dict[str, Any]:
    """The four runs; the figures of each under ``runs``."""
    runs = [
        _payq(stack, shape, captures, configured=False, tweaks=tweaks, say=say),
        _payq(stack, shape, captures, configured=True, tweaks=tweaks, say=say),
        _bare_celery(stack, shape, captures, say=say),
        _dramatiq(stack, dramatiq_shape, captures, say=say),
    ]
    return {
        "captures": captures, "rate_per_s": RATE, "retry_after_s": RETRY_AFTER, "fresh_per_s": FRESH_PER_S,
        "ideal_s": round(captures / RATE, 2), "ideal_learned_s": round(captures / RATE + RETRY_AFTER, 2),
        "runs": {run["system"]: run for run in runs},
    }


SMALL_STORE = "bench-small-store"
SMALL_PER_S = 2.0  # the small store's captures per second while the flooding store's backlog drains


def run_fair_share(stack: Stack, shape: Shape, captures: int, *, tweaks: tuple[str, ...] = (), say: Any = print) -> dict[str, Any]:
    """Issue #36: a small store's captures (2/s) beside another store's flood of ``captures``, the limit configured.

    Two payq runs, one after the other: turns first come, first served
    (``PAYQ_FAIR_SHARE=false``, as before) and shared between stores (the
    default). Measured: the small store's captures' wait (enqueue to the API
    call) and the time to settle the flood against ``N / R`` (the small
    store's calls, about 7% more, are in it too).
    """
    runs = [_payq(stack, shape, captures, configured=True, tweaks=tweaks, say=say, fair=fair) for fair in (False, True)]
    return {"captures": captures, "rate_per_s": RATE, "small_per_s": SMALL_PER_S, "ideal_s": round(captures / RATE, 2),
            "runs": {run["system"]: run for run in runs}}


def _payq(stack: Stack, shape: Shape, captures: int, *, configured: bool, tweaks: tuple[str, ...], say: Any,
          fair: bool | None = None) -> dict[str, Any]:
    system = "payq-configured" if configured else "payq-learned"
    env = {"PAYQ_RATE_LIMITS": json.dumps({"capture": RATE, "feedback": RATE})} if configured else None
    if fair is not None:
        system = "payq-fair-share" if fair else "payq-first-come"
        env = {**(env or {}), "PAYQ_FAIR_SHARE": "true" if fair else "false"}
    trip_ids = publish.trips(f"pq{uuid.uuid4().hex[:6]}", captures)
    jobs = publish.payq_captures(trip_ids)  # validated before the clock starts, as a store backend's batch would be
    with LivePayq(stack, 0.0, shape, env=env, tweaks=tweaks) as live:
        producer = live.producer

        def cancel(trip: str) -> None:
            producer.enqueue("cancel", {"storeId": publish.STORE, "shoppingTripId": trip})

        def small_capture(trip: str) -> None:
            producer.enqueue("capture", {**publish.capture_fields(trip), "storeId": SMALL_STORE})

        result = _measure(system, live.log, live.fleet, lambda: publish.payq_publish(producer, jobs),
                          cancel if fair is None else small_capture, trip_ids, captures / RATE + (0 if configured else RETRY_AFTER), say,
                          fresh_path=CANCEL if fair is None else CAPTURE, fresh_rate=FRESH_PER_S if fair is None else SMALL_PER_S)
        result["pace"] = _learned(stack)
    if configured:
        result["configured_per_s"] = RATE
    _say(say, result)
    return result


def _learned(stack: Stack) -> dict[str, Any]:
    """What payq's 429s taught about each limited endpoint (``payq:pace:<op>``), and its pace at the end."""
    out: dict[str, Any] = {}
    now = time.time()
    for operation in ("capture", "feedback"):
        state = stack.client.hgetall(keys.pace(operation))
        if state.get("accepted"):
            learned = Learned(float(state["accepted"]), float(state["since"]), float(state["climb"]))
            pace = pace_at(learned, None, now)
            out[operation] = {"accepted": round(learned.accepted, 2), "pace_at_end": round(pace, 2) if pace else None,
                              "climb_s": learned.climb}
    return out


def _bare_celery(stack: Stack, shape: Shape, captures: int, *, say: Any) -> dict[str, Any]:
    sandbox, log = stack.fresh(0.0)
    per_process = f"{RATE / shape.processes:g}/s"
    fleet = start_bare_celery(shape, stack.redis_url, sandbox.url, app="benchmarks.paced_celery", queues=paced_celery.QUEUES,
                              env={"BENCH_RATE_LIMIT": per_process})
    trip_ids = publish.trips(f"bc{uuid.uuid4().hex[:6]}", captures)
    client = stack.client
    try:
        fleet.wait_ready()
        posts = _peer_posts(trip_ids)

        def backlog() -> None:
            publish.celery_publish(client, paced_celery.CAPTURE_TASK, paced_celery.CAPTURE_QUEUE, posts)

        def cancel(trip: str) -> None:
            publish.celery_publish(client, paced_celery.CANCEL_TASK, paced_celery.CANCEL_QUEUE, [(publish.cancel_body(trip),)])

        result = _measure("bare-celery", log, fleet, backlog, cancel, trip_ids, captures / RATE, say)
    finally:
        fleet.stop(timeout=5)
    result["rate_limit_per_process"] = per_process
    _say(say, result)
    return result


def _dramatiq(stack: Stack, shape: Shape, captures: int, *, say: Any) -> dict[str, Any]:
    sandbox, log = stack.fresh(0.0)
    fleet = start_dramatiq(shape, stack.redis_url, sandbox.url, module="benchmarks.paced_dramatiq", env={"BENCH_RATE_LIMIT": str(RATE)})
    trip_ids = publish.trips(f"dq{uuid.uuid4().hex[:6]}", captures)
    client = stack.client
    try:
        fleet.wait_ready()
        posts = _peer_posts(trip_ids)

        def backlog() -> None:
            publish.dramatiq_publish(client, paced_dramatiq.CAPTURE_QUEUE, paced_dramatiq.capture.actor_name, posts)

        def cancel(trip: str) -> None:
            publish.dramatiq_publish(client, paced_dramatiq.CANCEL_QUEUE, paced_dramatiq.cancel.actor_name, [(publish.cancel_body(trip),)])

        result = _measure("dramatiq", log, fleet, backlog, cancel, trip_ids, captures / RATE, say)
    finally:
        fleet.stop(timeout=5)
    result["backoff_ms"] = [paced_dramatiq.MIN_BACKOFF_MS, paced_dramatiq.MAX_BACKOFF_MS]
    _say(say, result)
    return result


def _peer_posts(trip_ids: list[str]) -> list[tuple[str, ...]]:
    """Each trip's capture body and report body (payq's exact bytes): the peers' capture task chains the report."""
    settled_at = int(time.time())
    out: list[tuple[str, ...]] = []
    for trip in trip_ids:
        (_, capture_body), (_, report_body) = publish.api_bodies(trip, settled_at)
        out.append((capture_body, report_body))
    return out


def _measure(system: str, log: CallLog, fleet: Fleet, backlog: Callable[[], None], cancel: Callable[[str], None],
             trip_ids: list[str], ideal: float, say: Any, *, fresh_path: str = CANCEL, fresh_rate: float = FRESH_PER_S) -> dict[str, Any]:
    """Limit the sandbox, queue the backlog with the trickle of cancels beside it, wait until every trip settled; the figures."""
    log.set_faults(limits_script())
    trips = set(trip_ids)
    meter = LoadMeter().start()
    pids = [pid for proc in fleet.procs for pid in proc.pids()]
    cpu0 = cpu_seconds(pids)
    trickle = Trickle(cancel, fresh_rate)
    started = time.time()
    trickle.start()
    try:
        backlog()
        complete = _wait_settled(log, trips, fleet, timeout=60 + 6 * ideal)
    finally:
        trickle.stop()
    log.settle(quiet=2.0)  # a late repeat of an accepted call would arrive here
    cpu = cpu_seconds([pid for proc in fleet.procs for pid in proc.pids()]) - cpu0
    others = meter.cores()
    now = time.time()
    calls = [c for c in log.calls if c.time >= started]
    limited = [c for c in calls if c.path in LIMITED and c.trip in trips]
    accepted = {path: {c.trip for c in limited if c.path == path and c.status == 200} for path in LIMITED}
    ok_times = sorted(c.time for c in limited if c.status == 200)
    last_ok = ok_times[-1] if ok_times else now
    settle_s = last_ok - started
    throttled = sum(1 for c in limited if c.status == 429)
    captured = sorted(c.time for c in limited if c.path == CAPTURE and c.status == 200)
    fresh, never = trickle.waits(log.calls, started, last_ok, now, fresh_path)
    return {
        "system": system, "shape": fleet.shape.label, "complete": complete, "captures": len(trips),
        "settle_s": round(settle_s, 2), "ideal_s": round(ideal, 2), "ratio": round(settle_s / ideal, 3),
        "calls": len(limited), "throttled": throttled, "throttled_share": round(throttled / max(len(limited), 1), 4),
        "other_statuses": sum(1 for c in limited if c.status not in (200, 429)),
        "duplicates": _repeats_after_accepted(limited),
        "lost": {"captures": len(trips - accepted[CAPTURE]), "reports": len(trips - accepted[FEEDBACK])},
        "bursts_429": {_name(path): _bursts([c.time for c in limited if c.path == path and c.status == 429]) for path in LIMITED},
        "first_429_after_ms": {_name(path): ms(min(t) - started) if (t := [c.time for c in limited if c.path == path and c.status == 429])
                               else None for path in LIMITED},
        "max_accepted_in_1s": {_name(path): most_in_one_second([c.time for c in limited if c.path == path and c.status == 200])
                               for path in LIMITED},
        "steady_capture_rate": _middle_rate(captured),
        # every store's accepted captures while the backlog drained, per second: against the pace, whoever's turns they were
        "all_capture_rate": round(sum(1 for c in calls if c.path == CAPTURE and c.status == 200 and c.time <= last_ok) / max(settle_s, 1e-9), 2),
        "timeline": _timeline(limited, started),
        "fresh_wait": summary_ms(fresh), "fresh_never_called": never,
        "worker_cpu_s": round(cpu, 1), "other_load_cores": others,
    }


def _wait_settled(log: CallLog, trips: set[str], fleet: Fleet, timeout: float, stall: float = 60.0) -> bool:
    """Poll until every trip has an accepted capture and an accepted report; False on ``timeout`` or ``stall`` s without a call."""
    deadline = time.monotonic() + timeout
    last_change, last_seen = time.monotonic(), -1
    while True:
        seen = log.poll()
        done = {(c.path, c.trip) for c in log.calls if c.status == 200 and c.path in LIMITED and c.trip in trips}
        if len(done) >= 2 * len(trips):
            return True
        if not fleet.alive():
            raise RuntimeError(f"{fleet.system} workers exited:\n{fleet.output()}")
        now = time.monotonic()
        if seen != last_seen:
            last_change, last_seen = now, seen
        if now > deadline or now - last_change > stall:
            return False
        time.sleep(0.5)


def _repeats_after_accepted(calls: list[Call]) -> int:
    """Calls to an endpoint for a trip whose earlier call to that endpoint had been accepted (200)."""
    accepted: set[tuple[str, str]] = set()
    repeats = 0
    for call in sorted(calls, key=lambda c: c.time):
        key = (call.path, call.trip)
        if key in accepted:
            repeats += 1
        elif call.status == 200:
            accepted.add(key)
    return repeats


def _bursts(times: list[float], gap: float = 1.0) -> int:
    """Runs of 429s, each less than ``gap`` seconds after the one before."""
    ordered = sorted(times)
    return sum(1 for i, t in enumerate(ordered) if i == 0 or t - ordered[i - 1] >= gap)


def _middle_rate(times: list[float]) -> float | None:
    """Calls per second between the 10th and the 90th percentile call: the steady pace, start and tail left out."""
    if len(times) < 20:
        return None
    low, high = int(len(times) * 0.1), int(len(times) * 0.9)
    span = times[high] - times[low]
    return round((high - low) / span, 1) if span > 0 else None


def _timeline(calls: list[Call], started: float, step: float = 5.0) -> dict[str, list[int]]:
    """Accepted captures, accepted reports and 429s in each ``step`` seconds from the start: where a run went slow."""
    end = max((c.time for c in calls), default=started)
    buckets = int((end - started) // step) + 1
    out = {"step_s": [int(step)], "captures": [0] * buckets, "reports": [0] * buckets, "throttled": [0] * buckets}
    for call in calls:
        index = int((call.time - started) // step)
        if call.status == 429:
            out["throttled"][index] += 1
        elif call.status == 200:
            out["captures" if call.path == CAPTURE else "reports"][index] += 1
    return out


def _name(path: str) -> str:
    return "capture" if path == CAPTURE else "feedback"


def _say(say: Any, r: dict[str, Any]) -> None:
    lost = r["lost"]["captures"] + r["lost"]["reports"]
    pace = "".join(f"; learned {op} {p['accepted']}/s" for op, p in r.get("pace", {}).items())
    say(f"  pacing {r['system']:<16} {r['shape']:<14} settled in {r['settle_s']:.1f}s = {r['ratio']:.2f}x ideal ({r['ideal_s']:g}s); "
        f"429s {r['throttled']}/{r['calls']} ({100 * r['throttled_share']:.1f}%), bursts {r['bursts_429']}; "
        f"steady {r['steady_capture_rate']}/s; {r['duplicates']} duplicates, {lost} lost; fresh p50/p99 "
        f"{r['fresh_wait']['p50_ms']}/{r['fresh_wait']['p99_ms']} ms ({r['fresh_never_called']} never called); "
        f"worker CPU {r['worker_cpu_s']}s; others {r['other_load_cores']} cores{pace}")
