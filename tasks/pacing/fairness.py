"""Fair turns between stores at a paced endpoint: pure functions, carried out by BEGIN (``tasks/store/lua/begin.lua``).

An endpoint's turns (:mod:`tasks.pacing.rules`, GCRA) used to go to jobs in the
order they asked, so a store that enqueued 600 captures held every other
store's behind all of them. Now they are shared by start-time fair queuing:

- each store has a clock, its **next turn at its share**: a turn it takes moves
  it to ``max(clock, turn - HORIZON) + n / pace``, where ``n`` is the number of
  stores waiting for the endpoint now (its own included; with weights,
  ``PAYQ_STORE_LIMITS``, their summed weights over its own). Alone, a store's clock
  moves with the endpoint's, so a store alone still gets the whole pace; with two
  flooding stores each clock moves twice as fast as the endpoint's and each
  store gets every other turn. A clock may lag the turns by up to a horizon: a
  store whose jobs came back late (the mover's poll, the queue behind the
  flooding stores' jobs) makes up for it with turns back to back, rather than
  losing its share to stores that never stop asking;
- a store takes the endpoint's next free turn only while its clock is within
  :data:`HORIZON` of now. No store books turns further ahead than that (the
  endpoint's next free turn stays within the horizon plus one step), so a
  store that starts asking later waits about a horizon for its first turn, not
  behind another store's backlog;
- a job whose store is past its share gets no turn. It joins its store's
  **line** (a second clock per store, one turn apart per job, as if the store
  were alone) and comes back when its place in the line is within the
  horizon, asking again. A store with more jobs than its share asks more often
  than it takes; those jobs join the back of its line again (order inside a
  store is not kept; a trip's order is kept by its books, not by turns).

A store is waiting while either clock is ahead of now: it has a turn booked,
or jobs in its line. The endpoint's own ``tat`` (the next free turn) is kept as
before, so a worker of the previous version, which knows no stores, shares
the same pace during a rolling upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass

# Seconds ahead that a store may book turns. Small, so a store that starts asking while another floods
# waits about this for its first turn; not smaller than a returning job's lateness (the mover's poll,
# 0.1 s, and a worker's fetch), or a store's jobs would come back after their share had passed them by.
HORIZON = 1.0
# A clock this close to another counts as the same time (float sums of 1/pace).
EPSILON = 1e-6


@dataclass(frozen=True)
class StoreClocks:
    """A store's two clocks at an endpoint: ``turn``, its next turn at its share; ``line``, the end of its line of jobs waiting to ask."""

    turn: float = 0.0
    line: float = 0.0

    def waiting(self, now: float) -> bool:
        """Whether the store counts as waiting for the endpoint: a turn booked, or jobs in its line."""
        return max(self.turn, self.line) > now


@dataclass(frozen=True)
class Share:
    """What a job's ask came to: a ``turn`` (the endpoint's next free turn), or none and ``ask_at``, when to ask again.

    ``tat`` is the endpoint's next free turn afterwards, ``clocks`` the store's.
    """

    turn: float | None
    ask_at: float | None
    tat: float
    clocks: StoreClocks


def fair_turn(now: float, paused_until: float, tat: float, pace: float, clocks: StoreClocks, others_weight: float,
              weight: float = 1.0) -> Share:
    """A job of a store with ``clocks`` asks for a turn at an endpoint paced at ``pace`` (> 0) whose next free turn is ``tat``.

    ``others_weight`` is the sum of the weights of the other stores waiting for
    the endpoint now (each 1 unless ``PAYQ_STORE_LIMITS`` gives it one: so,
    unweighted, how many they are), ``weight`` the store's own: its share of
    the turns is its weight over all the waiting stores' (deficit-free weighted
    fair queuing), and a store alone still gets the whole pace, whatever its weight.
    """
    step = (others_weight + weight) / (pace * weight)
    if clocks.turn <= now + HORIZON + EPSILON:
        turn = max(now, paused_until, tat)
        return Share(turn, None, turn + 1 / pace, StoreClocks(max(clocks.turn, turn - HORIZON) + step, clocks.line))
    place = max(clocks.line, clocks.turn)
    return Share(None, place - HORIZON, tat, StoreClocks(clocks.turn, place + 1 / pace))


@dataclass(frozen=True)
class CapClocks:
    """A capped store's clocks at an endpoint (``PAYQ_STORE_LIMITS`` ``calls_per_second``): ``next``, its next free call at
    its cap; ``line``, the end of its line of jobs waiting for one."""

    next: float = 0.0
    line: float = 0.0


def cap_wait(now: float, wait_in_place: float, cap: float, clocks: CapClocks) -> tuple[float | None, CapClocks]:
    """Before its turn at the endpoint: None if a job of a store capped at ``cap`` calls a second may take one now,
    else when to ask again (its place in the store's line, one call at the cap apart), with the clocks after.

    Asked before the endpoint's turn is taken, so a capped store never holds one of the endpoint's turns it may
    not use; a turn within ``wait_in_place`` of its next free call is taken (the worker waits for it).
    """
    if clocks.next - now <= wait_in_place:
        return None, clocks
    place = max(clocks.line, clocks.next)
    return place, CapClocks(clocks.next, place + 1 / cap)


def cap_turn(turn: float, cap: float, clocks: CapClocks) -> tuple[float, CapClocks]:
    """A capped store's job takes ``turn`` (the endpoint's, or now when unpaced), no sooner than its next free call;
    its next free call then comes ``1 / cap`` after it."""
    turn = max(turn, clocks.next)
    return turn, CapClocks(turn + 1 / cap, clocks.line)
