"""What a worker process builds once and shares between its threads."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import cast

import redis

from config.settings import Settings
from payapi.client import PaymentClient, Signer
from tasks.jobs.decide import RetryPolicy
from tasks.notify.client import WebhookClient, webhook_client
from tasks.pacing.pacer import Pacer
from tasks.redis.replicas import Patient, Replicas
from tasks.store.deadletters import DeadLetterStore
from tasks.store.leases import Holdings, LeaseStore, new_worker_id
from tasks.store.records import JobStore
from tasks.stores import Stores

# a claim (before the call) and the outcomes (before the acknowledgement)
_CONFIRMED_JOBS = frozenset({"begin", "succeed", "finish_capture", "defer"})


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
    replicas: Replicas = field(default_factory=lambda: Replicas(0, 1.0))
    clock: Callable[[], float] = time.time  # injected, like the random source, so a test can pin when things happen

    def patient(self, deadline: float) -> Runtime:
        """This runtime with stores that outlast a failover until ``deadline`` (:class:`~tasks.redis.replicas.Patient`).

        A claim and every outcome return only once ``PAYQ_REDIS_MIN_REPLICAS``
        replicas hold them: no API call on a claim a failover could forget, no
        acknowledgement of an outcome it could.
        """
        def wrap(store: object, confirmed: frozenset[str]) -> Patient:
            return Patient(store, self.redis, self.replicas, deadline, confirmed, self.clock)

        return replace(
            self,
            jobs=cast(JobStore, wrap(self.jobs, _CONFIRMED_JOBS)),
            dead_letters=cast(DeadLetterStore, wrap(self.dead_letters, frozenset({"add"}))),
            pacer=cast(Pacer, wrap(self.pacer, frozenset())),
        )

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

    def get(self) -> Runtime:
        """This process's runtime, built on first use."""
        if self._runtime is None or self._pid != os.getpid():
            with self._lock:
                if self._runtime is None or self._pid != os.getpid():
                    signer = self._signer_factory() if self._signer_factory is not None else None
                    self._runtime = Runtime.build(self.settings, signer)
                    self._pid = os.getpid()
        return self._runtime
