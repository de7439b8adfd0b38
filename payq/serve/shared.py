"""What every request of ``payq serve`` reads from its application: the settings and the intake's Redis-side jobs."""

from __future__ import annotations

from fastapi import Request

from config.settings import Settings
from payq.serve.jobs import IntakeJobs


def settings_of(request: Request) -> Settings:
    """The settings the application was built with."""
    settings: Settings = request.app.state.settings
    return settings


def intake_jobs_of(request: Request) -> IntakeJobs:
    """The application's :class:`IntakeJobs`, on its Redis client."""
    jobs: IntakeJobs = request.app.state.intake_jobs
    return jobs

