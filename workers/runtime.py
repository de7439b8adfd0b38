"""What a worker process builds once and shares between its threads."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis

from config.settings import Settings
from payapi.client import PaymentClient, Signer
from tasks import tracing
from tasks.jobs.decide import RetryPolicy
from tasks.notify.client import WebhookClient, webhook_client
from tasks.pacing.pacer import Pacer
from tasks.redis.patience import Patience
from tasks.redis.replicas import Replicas
from tasks.store.deadletters import DeadLetterStore
from tasks.store.leases import Holdings, LeaseStore, new_worker_id
from tasks.store.records import JobStore
from tasks.stores import Stores
from workers.degraded import Degraded

T = TypeVar("T")


@dataclass
class Runtime:
    """Settings, Redis, the API client and the stores (:class:`~tasks.stores.Stores`), wired together."""

    settings: Settings
    redis: redis.Redis
    client: PaymentClient
    jobs: JobStore
    dead_letters: DeadLetterStore
    policy: RetryPolicy
    pacer: Pacer
    leases: LeaseStore
    holdings: Holdings  # this process's worker id, and the jobs it holds (its heartbeat renews their leases)
    webhook: WebhookClient | None = None  # None: outcome notifications are off
    rng: random.Random = field(default_factory=random.Random)
    replicas: Replicas = field(default_factory=lambda: Replicas(0, 1.0, failover=False))
    degraded: Degraded = field(default_factory=Degraded)  # this process's degraded state (workers/degraded.py)
    # injected, like the random source, so a test can pin when things happen
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    # PAYQ_STORE_LIMITS as every BEGIN passes it, made once: the weighed stores' weights, and each capped store's cap
    store_weights: dict[str, float] = field(init=False)
    store_caps: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        limits = self.settings.store_limits
        self.store_weights = {store: limit.weight for store, limit in limits.items() if limit.weight is not None}
        self.store_caps = {store: limit.calls_per_second for store, limit in limits.items() if limit.calls_per_second is not None}

    def patience(self, seconds: float) -> Patience:
        """A patience of ``seconds`` on this runtime's clock, for one delivery's Redis steps (:mod:`tasks.redis.patience`)."""
        return Patience.of(seconds, self.clock, self.sleep)

    def step(self, patience: Patience, step: Callable[[], T]) -> T:
        """``step()``, waiting out Redis within ``patience``; each fault it meets tells this process's degraded state."""
        return patience.call(step, on_fault=self.degraded.fault)

    def write(self, patience: Patience, write: Callable[[], T]) -> T:
        """``write()``, returning only once the replicas in sync hold it (:meth:`~tasks.redis.replicas.Replicas.confirmed`).

        For a claim before its call and every outcome before its
        acknowledgement: no API call on a claim a failover could forget, no
        acknowledgement of an outcome it could.
        """
        return self.replicas.confirmed(patience, self.redis, write, on_fault=self.degraded.fault)

    @classmethod
    def build(cls, settings: Settings, signer: Signer | None = None) -> Runtime:
        """Wire a runtime from ``settings``; nothing connects until first used."""
        stores = Stores.build(settings)
        return cls(
            settings=settings,
            redis=stores.redis,
            client=PaymentClient(settings, signer=signer),
            jobs=stores.jobs,
            dead_letters=stores.dead_letters,
            policy=RetryPolicy.from_settings(settings),
            pacer=stores.pacer,
            leases=stores.leases,
            holdings=Holdings(new_worker_id()),
            webhook=webhook_client(settings),
            replicas=stores.replicas,
        )


class RuntimeHolder:
    """One :class:`Runtime` per process: sockets and HTTP pools must not cross a fork.

    ``signer_factory`` (e.g. :func:`payapi.signing.signer_factory`) is called
    once per process, with the runtime: credentials are resolved there and
    not inherited across a fork, and whatever it raises reaches the caller
    of :meth:`get` (the worker's start-up check).
    """

    def __init__(self, settings: Settings, signer_factory: Callable[[], Signer] | None = None) -> None:
        self.settings = settings
        self._signer_factory = signer_factory
        self._lock = threading.Lock()
        self._runtime: Runtime | None = None
        self._pid = 0

    def worker(self) -> str:
        """This process's worker id (its heartbeat's): what its transport's in-flight lists are named after."""
        return self.get().holdings.worker

    def may_fetch(self) -> bool:
        """Whether this process takes work now (:class:`~workers.degraded.Degraded`)."""
        return self.get().degraded.may_fetch()

    def get(self) -> Runtime:
        """This process's runtime, built on first use."""
        if self._runtime is None or self._pid != os.getpid():
            with self._lock:
                if self._runtime is None or self._pid != os.getpid():
                    tracing.setup("payq-worker")  # once per process, from the OTEL_* environment (off without an endpoint)
                    signer = self._signer_factory() if self._signer_factory is not None else None
                    self._runtime = Runtime.build(self.settings, signer)
                    self._pid = os.getpid()
        return self._runtime
