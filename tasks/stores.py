"""Payq's records in Redis, wired once: what operators' tools read and change (no API client, no webhook client)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from config.settings import Settings
from tasks.pacing.pacer import Pacer, configured_limits
from tasks.redis.connection import connect, replicas
from tasks.redis.replicas import Replicas
from tasks.store.deadletters import DeadLetterStore
from tasks.store.leases import LeaseStore
from tasks.store.records import JobStore

_DAY = 86400


@dataclass
class Stores:
    """Settings, Redis and the stores on it: jobs, dead letters, the endpoints' paces, workers' heartbeats and jobs' leases; the replicas a write must reach."""

    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    dead_letters: DeadLetterStore
    pacer: Pacer
    leases: LeaseStore
    replicas: Replicas

    @classmethod
    def build(cls, settings: Settings) -> Stores:
        """Wire the stores for ``settings``; nothing connects until first used."""
        client = connect(settings)
        return cls(
            settings=settings,
            redis=client,
            jobs=JobStore(client, int(settings.job_retention_days * _DAY), int(settings.trip_books_retention_days * _DAY)),
            dead_letters=DeadLetterStore(client, int(settings.job_retention_days * _DAY), int(settings.dead_letter_retention_days * _DAY),
                                         notify=settings.notify_url is not None),
            pacer=Pacer(client, configured_limits(settings.rate_limits)),
            leases=LeaseStore(client, settings.lease_seconds),
            replicas=replicas(settings),
        )
