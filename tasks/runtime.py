"""What a worker process builds once and shares between its threads."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from config.settings import Settings
from payapi.client import PaymentClient, Signer
from tasks.deadletters import DeadLetterStore
from tasks.decide import RetryPolicy
from tasks.jobstore import JobStore
from tasks.notify import Notifier, notifier
from tasks.pacer import Pacer, configured_limits
from tasks.redis_conn import connect

_DAY = 86400


@dataclass
class Runtime:
    """Settings, Redis, the API client and the stores, wired together."""

    settings: Settings
    redis: redis.Redis
    client: PaymentClient
    jobs: JobStore
    dead_letters: DeadLetterStore
    policy: RetryPolicy
    pacer: Pacer
    notifier: Notifier | None = None  # None: outcome notifications are off
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def build(cls, settings: Settings, signer: Signer | None = None) -> Runtime:
        """Wire a runtime from ``settings``; nothing connects until first used."""
        client = connect(settings)
        return cls(
            settings=settings,
            redis=client,
            client=PaymentClient(settings, signer=signer),
            jobs=JobStore(client, int(settings.job_retention_days * _DAY)),
            dead_letters=DeadLetterStore(client, int(settings.job_retention_days * _DAY), int(settings.dead_letter_retention_days * _DAY),
                                         notify=settings.notify_url is not None),
            policy=RetryPolicy.from_settings(settings),
            pacer=Pacer(client, configured_limits(settings.rate_limits)),
            notifier=notifier(settings),
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
