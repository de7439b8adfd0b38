"""The worker's own fetch: a message it takes stays in Redis, in its in-flight list, until it is settled.

kombu's Redis transport takes a message off its queue (``BRPOP``) into the
worker's memory; a worker killed then took it along, and only a sweep an
hour later (kombu's visibility timeout), or payq's 63 s lost-message rule,
found it again. payq's channel sends its own two commands instead, through
the same hooks of kombu's poller (``_brpop_start`` when the worker has a free
thread, ``_brpop_read`` when the answer is there):

- ``fetch.lua`` (:mod:`tasks.store.inflight`): settle what the worker
  finished since its last fetch (acknowledged: out of its in-flight list;
  given back: to the head of its queue), then move up to as many messages as
  it has free threads into its in-flight lists, fairly across its queues,
  in one round trip;
- when that found nothing, ``XREAD BLOCK`` on ``payq:wake`` from the id the
  script returned: every script that publishes adds an entry, so a message
  published after the fetch wakes the worker at once (one that an older
  producer pushed without one waits at most a second, the block's timeout).

Acknowledging, rejecting and requeueing only queue the settlement for the
next fetch (a worker that dies first leaves a finished job's message behind,
and its next holder finds the job finished). A closing channel gives back
what it still holds at once; a new one gives back what its worker's lists
still hold from before (a close that could not reach Redis). While the
worker takes no work (:mod:`workers.degraded`) its fetches take nothing: they
only settle, then block a second on ``payq:wake``, so the connection stays in
use (a primary gone is noticed at once) and costs a round trip or two a second.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from queue import Empty
from time import monotonic
from typing import Any, Protocol

import redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from config.celery import STEPS_PATIENCE
from payapi.operations import QUEUES
from tasks.redis import keys, scripts
from tasks.redis.patience import Patience
from tasks.store.inflight import InFlight, Settled, ack_commands, fetch_call, read_fetch

log = logging.getLogger("payq.transport")


class Fetcher(Protocol):
    """What a channel needs of its worker process: its id (its heartbeat's), and whether it takes work now."""

    def worker(self) -> str:
        """The worker process's id."""

    def may_fetch(self) -> bool:
        """Whether the worker takes work now."""


class QoS(virtual.QoS):  # type: ignore[misc,unused-ignore]
    """kombu's in-memory QoS, whose acknowledgements and rejections settle the message in Redis."""

    channel: OwnedFetch

    def ack(self, delivery_tag: str) -> None:
        """Acknowledge: the message leaves the worker's in-flight list with its next fetch."""
        self.channel.payq_settle(delivery_tag, back=False)
        super().ack(delivery_tag)  # type: ignore[no-untyped-call]

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Reject: requeued, the message goes back to the head of its queue with the next fetch; otherwise it is acknowledged."""
        if self.channel.payq_settle(delivery_tag, back=requeue):
            self._quick_ack(delivery_tag)
        elif delivery_tag not in self._delivered:
            # given back already: the channel closed (a lost connection) while its task ran, and restore_unacked
            # returned every message it held; kombu's reject would raise KeyError and log it as CRITICAL
            return
        else:  # not one of payq's job queues: kombu's way
            super().reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]

    def restore_unacked(self) -> list[Any]:
        """The channel is closing: give back every message delivered and not settled, now; [] (kombu's errors)."""
        self._flush()  # type: ignore[no-untyped-call]
        for tag in list(self._delivered):
            self.channel.payq_settle(tag, back=True)
        self._delivered.clear()
        self.channel.payq_settle_now()
        return []


class OwnedFetch:
    """What payq changes in kombu's Redis channel to own the fetch (mixed in ahead of it)."""

    QoS = QoS
    ack_emulation = False  # kombu's unacknowledged hash: the in-flight lists keep what it kept, and more
    # the worker process this process's channels fetch for (workers.redis_transport.install); not a transport option,
    # which Celery shows (and serializes) in the worker's stats
    fetcher: Fetcher | None = None
    # kombu's attributes and methods this mixin uses
    client: Any
    connection: Any
    active_queues: list[str]
    _queue_cycle: Any
    _in_poll: Any
    _brpop_sent_at: float | None
    _closing: bool
    _fanout_queues: dict[str, Any]
    brpop_timeout: float
    connection_errors: tuple[type[BaseException], ...]
    ResponseError: type[BaseException]
    spare_client: Callable[[], redis.Redis]
    _create_client: Callable[..., Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.QoS = QoS  # kombu's Redis channel sets its own class in __init__
        self._payq_held: dict[str, Settled] = {}  # delivery tag -> where the message came from, and its bytes
        self._payq_settling: deque[Settled] = deque()  # for the next fetch; any thread adds, the poller's takes
        # the fetch in flight: its keys and what it settles (None: kombu's BRPOP is, for queues other than payq's)
        self._payq_sent: tuple[list[str], list[Settled]] | None = ([], [])
        self._payq_fast = True  # the next command is a fetch; False: block on payq:wake
        self._payq_wake = "0-0"
        self._payq_sha = scripts.sha("fetch")
        self._payq_acks = 0  # LREMs sent ahead of the fetch script, whose replies come first

    def payq_may_fetch(self) -> bool:
        """Whether the worker takes work now."""
        return self.fetcher is None or self.fetcher.may_fetch()

    def payq_settle(self, delivery_tag: str, *, back: bool) -> bool:
        """Settle the message of ``delivery_tag`` (acknowledged, or ``back`` to its queue) with the next fetch (or as the channel closes).

        False if the channel did not fetch it (one of kombu's ``BRPOP``, or settled already).
        """
        held = self._payq_held.pop(delivery_tag, None)
        if held is not None:
            self._payq_settling.append(Settled(held.queue, held.message, back))
        return held is not None

    def payq_settle_now(self) -> None:
        """Settle everything waiting for a fetch now, through a client of its own, waiting out Redis for a while."""
        settled = self._take_settling()
        if not settled:
            return
        inflight = InFlight(self.spare_client(), self._fetcher().worker())
        try:
            Patience.of(STEPS_PATIENCE).call(lambda: inflight.settle(settled))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # they stay in the worker's in-flight lists: its next channel gives them back, or, the worker gone, its sweep
            log.warning("could not settle %d messages in Redis (%s); they stay in this worker's in-flight lists", len(settled), exc)

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        """Consume ``queue``; first give back what this worker's in-flight list for it still holds from a channel before."""
        if queue in QUEUES:
            given = InFlight(self._create_client(), self._fetcher().worker()).give_back_all([queue])
            if given:
                log.warning("gave back %d messages left in this worker's in-flight list for %s", given, queue)
        return super().basic_consume(queue, *args, **kwargs)  # type: ignore[misc]

    def close(self) -> None:
        """Close the channel, giving back what it holds and settling the rest."""
        super().close()  # type: ignore[misc]
        self.payq_settle_now()

    def _fetcher(self) -> Fetcher:
        if self.fetcher is None:
            raise RuntimeError("payq's transport consumes payq's queues only for a payq worker (workers.redis_transport.install)")
        return self.fetcher

    def _take_settling(self) -> list[Settled]:
        taken = []
        while self._payq_settling:
            taken.append(self._payq_settling.popleft())
        return taken

    def _brpop_start(self, timeout: float | None = None) -> None:
        """Send the next command on the poller's connection: a fetch, or, after one found nothing, a block on ``payq:wake``.

        Only payq's job queues are fetched so: a channel consuming none of them
        (a ``celery inspect`` waiting for its replies) keeps kombu's ``BRPOP``.
        """
        queues = [queue for queue in self._queue_cycle.consume(len(self.active_queues)) if queue in QUEUES]
        if not queues:
            super()._brpop_start(timeout)  # type: ignore[misc]
            self._payq_sent = None
            return
        connection = self.client.connection
        if self._payq_fast:
            settled = self._take_settling()
            # a worker that takes no work (workers/degraded.py) only settles, and blocks: its connection stays in use, so a
            # primary gone is seen at once, and the block's second is its only cost
            wanted = (self.qos.can_consume_max_estimate() or 1) if self.payq_may_fetch() else 0  # type: ignore[attr-defined]
            worker = self._fetcher().worker()
            # acknowledgements go ahead of the script in the same round trip (ack_commands: about 3% of Redis's work per
            # job when they were inside it, benchmarks' scenario 13); given-back ones need the script (LREM, then push)
            commands = ack_commands(worker, [s for s in settled if not s.back])
            call_keys, args = fetch_call(worker, queues, wanted, [s for s in settled if s.back])
            self._payq_sent = (call_keys, settled)
            self._payq_acks = len(commands)
            commands.append(("EVALSHA", self._payq_sha, len(call_keys), *call_keys, *args))
            connection.send_packed_command(connection.pack_commands(commands))
        else:
            block_ms = int((timeout or self.brpop_timeout) * 1000)
            connection.send_command("XREAD", "BLOCK", block_ms, "STREAMS", keys.WAKE, self._payq_wake)
        self._in_poll = connection
        self._brpop_sent_at = monotonic()

    def _brpop_read(self, **options: Any) -> bool:
        """Read the answer: deliver what the fetch took; after nothing, block on ``payq:wake``; after a wake, fetch."""
        if self._payq_sent is None:
            return bool(super()._brpop_read(**options))  # type: ignore[misc]
        fast = self._payq_fast
        call_keys, settled = self._payq_sent
        self._payq_sent = ([], [])
        acks, self._payq_acks = (self._payq_acks if fast else 0), 0
        try:
            for _ in range(acks):
                self.client.parse_response(self.client.connection, "LREM", **options)
            reply = self.client.parse_response(self.client.connection, "EVALSHA" if fast else "XREAD", **options)
        except self.connection_errors:
            self.client.connection.disconnect()  # the next poll connects again
            self._unsent(settled)
            raise
        except redis.exceptions.NoScriptError:
            self._create_client().script_load(scripts.source("fetch"))  # a new primary, or a flushed script cache
            self._unsent(settled)
            raise Empty() from None
        finally:
            self._in_poll = None
        if not fast:
            self._payq_fast = True
            raise Empty()  # woken (or the block's second passed): fetch on the poller's next turn
        fetched = read_fetch(reply, call_keys)
        if not fetched.messages:
            self._payq_fast, self._payq_wake = False, fetched.wake or "0-0"
            if not self._closing:
                self._brpop_start()
            raise Empty()
        for queue, raw in fetched.messages:
            self._deliver(queue, raw)
        return True

    def _deliver(self, queue: str, raw: bytes | str) -> None:
        payload = loads(bytes_to_str(raw))  # type: ignore[no-untyped-call]
        tag = payload["properties"]["delivery_tag"]
        self._payq_held[tag] = Settled(queue, raw)
        if self._closing:  # taken as the channel closes: straight back
            self.payq_settle(tag, back=True)
            return
        self._queue_cycle.rotate(queue)
        self.connection._deliver(payload, queue)

    def _unsent(self, settled: list[Settled]) -> None:
        """A fetch whose answer was lost: what it settled is settled again with the next (each settlement may be made twice)."""
        self._payq_settling.extendleft(reversed(settled))

