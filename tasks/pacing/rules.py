"""How fast payq calls an endpoint: pure functions of the learned state, the configured limit and the clock.

Two limits make an endpoint's pace, the lower one wins:

- a **configured** limit (``PAYQ_RATE_LIMITS``), paced at 93% of it: workers
  on several hosts and the network add jitter to when calls arrive, and an
  API that counts calls per second window must never see one too many;
- a **learned** limit: on a 429 the API has shown what it accepts. payq
  counts the successful calls per second it sent in the API's counting
  window before the refused one (``accepted``), once the calls still in
  flight when the 429 came back have landed (:func:`lesson_at`; a 429 whose
  API went on taking the calls sent after it teaches nothing: :func:`measure`),
  paces at 90% of that once the 429's pause is over, and grows back along a
  cubic curve (botocore's adaptive mode): flat around ``accepted`` for a long
  while, then probing above it. Probing costs a whole Retry-After when it
  overshoots, so the climb is scaled to the Retry-After (ten times it, at
  least 30 s): with the documented 600 s, payq stays at the learned limit for
  well over an hour before it tries more.

The Redis side (the shared state, the slots taken by every worker) is
:mod:`tasks.pacing.pacer` and ``tasks/store/lua/begin.lua``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tasks.redis.keys import SUCCESSES_KEPT

BETA = 0.9                 # after a 429: pace at this share of what the API accepted
# Of a configured limit (see above): 93% leaves a call about 75 ms of lateness (1/0.93 - 1) before it
# could land in the same second as the limit's worth of punctual ones; 95% (52 ms) still drew a 429
# in the benchmark's runs, from a call held up between its worker's wake and its request going out.
CONFIGURED_SHARE = 0.93
MIN_PACE = 0.5             # calls/s: a learned pace never stops an endpoint altogether
CLIMB_PER_RETRY_AFTER = 10.0
MIN_CLIMB = 30.0           # seconds
FORGET_ABOVE = 4.0         # a learned pace that has grown to 4 x `accepted` is forgotten: the limit is gone
MEASURE_WINDOW = 3.0       # seconds of successful calls looked at when a 429 arrives
MIN_MEASURED_SPAN = 1.0    # seconds: the window an API counts its calls in
# Of the calls a limit took before its 429, the share it may take of those sent in the second after it (calls in
# flight behind the refused one, let through as the window's oldest age out or racing it to the API) and still have
# refused for a full window. In the benchmarks a limit's burst took none after, a one-off 429 about as many as before.
AFTER_SHARE = 0.5
# Seconds a worker keeps what it read of the learned state (tasks.pacing.pacer): a 429 found by another worker
# reaches this one within that (its pause, set at once, covers the meantime).
REFRESH = 0.5
# A lesson is in force this long before its pause ends, so every worker has read it by then (twice REFRESH).
LESSON_LEAD = 2 * REFRESH


@dataclass(frozen=True)
class Learned:
    """What a 429 taught about an endpoint.

    ``accepted`` is the calls per second the API accepted just before it,
    ``since`` when the pace starts growing back (the end of the 429's pause),
    ``climb`` how many seconds it takes to grow back to ``accepted``.
    """

    accepted: float
    since: float
    climb: float


def learned_pace(learned: Learned | None, now: float) -> float | None:
    """Calls per second the learned limit allows at ``now``; None when nothing is learned (or it was forgotten)."""
    if learned is None:
        return None
    x = (max(0.0, now - learned.since) - learned.climb) / learned.climb
    pace = learned.accepted * (1.0 + (1.0 - BETA) * x**3)
    if pace > FORGET_ABOVE * learned.accepted:
        return None
    return max(MIN_PACE, pace)


def pace_at(learned: Learned | None, configured: float | None, now: float) -> float | None:
    """The endpoint's pace at ``now`` in calls per second, or None: unpaced."""
    limits = [p for p in (learned_pace(learned, now), configured * CONFIGURED_SHARE if configured else None) if p is not None]
    return min(limits) if limits else None


def measure(successes: Sequence[tuple[int, int]], sent_at: float) -> float | None:
    """Calls per second the API accepted before it refused the call sent at ``sent_at``; None: nothing to learn.

    The most successes in any one-second window of the :data:`MEASURE_WINDOW`
    seconds up to it. ``successes`` are ``(tenth of a second since the epoch,
    count)`` pairs, by the tenth each successful call was sent in (not answered
    in: a call the API accepted just before it refused this one may be answered
    after the 429). Calls sent in the refused call's own tenth count; later
    ones do not. An API's limit is a number of calls per second window; summing
    over a longer span would count two windows' worth at its edges (ten calls
    just before a second turns and ten just after are not twenty a second). A
    burst let through in a fraction of a second counts as that second's calls.

    A limit refuses a call because its window is full, and keeps refusing until
    the window's oldest calls age out, so of the calls sent in the second after
    the refused one (those in flight with it) it takes few. When it took more
    than :data:`AFTER_SHARE` of what it had taken before, the 429 was not a
    full window (a fault, a storm) and teaches nothing: None.
    """
    oldest, last = int((sent_at - MEASURE_WINDOW) * 10), int(sent_at * 10)
    window = int(MIN_MEASURED_SPAN * 10)
    counts = {tenth: count for tenth, count in successes if count > 0 and oldest <= tenth <= last}
    if not counts:
        return None
    most = max(sum(counts.get(t, 0) for t in range(first, first + window)) for first in counts)
    after = sum(count for tenth, count in successes if last < tenth <= last + window)
    if after > AFTER_SHARE * most:
        return None
    return most / MIN_MEASURED_SPAN


def lesson_at(sent_at: float, now: float, resume_at: float, call_seconds: float) -> float:
    """When to measure what a 429 taught: once every call sent before the refused one (at ``sent_at``) has landed, and still in time.

    A call the API accepted just before it refused this one may still be in
    flight when the 429 comes back (and in a burst, the whole window's worth
    is: the first calls go out together and the 429 is answered at once); its
    success is counted only when its answer is written. Every call ends within
    ``call_seconds`` (the connect and read timeouts), so the lesson waits that
    long, but is in force :data:`LESSON_LEAD` before the pause ends, when
    turns are handed out again, and measures before the counts it needs
    expire. A pause too short for that is measured at once.
    """
    kept = sent_at - MEASURE_WINDOW + SUCCESSES_KEPT - 1.0
    return max(now, min(sent_at + call_seconds, resume_at - LESSON_LEAD, kept))


def cut(
    learned: Learned | None, pace: float | None, measured: float | None, retry_after: float | None, resume_at: float,
) -> Learned | None:
    """The learned limit after a 429 that paused the endpoint until ``resume_at``.

    ``pace`` is the pace in force when it came: if payq was already paced and
    still throttled, the limit is below that pace, whatever was measured. With
    neither a measurement nor a pace there is nothing to learn from; the pause
    alone holds.
    """
    known = [r for r in (measured, pace) if r is not None and r > 0]
    if not known:
        return learned
    climb = max(MIN_CLIMB, CLIMB_PER_RETRY_AFTER * (retry_after or 0.0))
    return Learned(accepted=max(MIN_PACE, min(known)), since=resume_at, climb=climb)


def same_burst(learned: Learned | None, now: float) -> bool:
    """Whether a 429 at ``now`` belongs to the burst an earlier cut already learned from (its pause has not ended).

    Every call in flight when the API starts refusing comes back 429; the
    first one teaches, the rest would cut the pace again and again for one overshoot.
    """
    return learned is not None and now < learned.since
