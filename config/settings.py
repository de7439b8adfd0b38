"""Every payq setting, in one typed object read from ``PAYQ_*`` variables and ``.env``.

Build it once at a process's entry point (``Settings()``) and pass it in; the
README's configuration table is generated from the field descriptions here.
"""

from __future__ import annotations

import math
import re
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Seconds a job may spend beyond its API call (BEGIN, recording the outcome) and still end before the
# visibility timeout.
_JOB_MARGIN = 5


class Settings(BaseSettings):
    """payq's configuration; each field is ``PAYQ_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="PAYQ_", env_file=".env", extra="ignore", frozen=True)

    redis_url: str = Field("redis://localhost:6379/0", description="Redis for queues, deferred jobs, dead letters and job records.")
    api_base_url: str = Field("http://127.0.0.1:8080", description="Base URL of the payment API (the sandbox locally).")
    api_auth: Literal["none", "sigv4"] = Field("none", description="`sigv4` signs every API request with AWS Signature Version 4; `none` is for the sandbox.")
    aws_region: str | None = Field(None, description="AWS region for SigV4 signing (required when api_auth=sigv4).")
    aws_service: str = Field("execute-api", description="AWS service name in the SigV4 scope (API Gateway's name, an assumption).")
    aws_profile: str | None = Field(None, description="Named profile from the shared AWS config files; unset uses the standard credential chain.")
    http_connect_timeout: float = Field(3.0, gt=0, description="Seconds to wait for a TCP connection to the API.")
    http_read_timeout: float = Field(10.0, gt=0, description=(
        "Seconds to wait for the API's response once connected; with the connect timeout, at least 5 s below"
        " `PAYQ_VISIBILITY_TIMEOUT`."
    ))
    http_pool_size: int = Field(64, ge=1, description="Keep-alive connections kept per worker process; at least the worker's concurrency.")
    max_attempts: int = Field(8, ge=1, description="API calls a job may make before it is dead-lettered as `retries-exhausted`.")
    backoff_base: float = Field(1.0, gt=0, description="Seconds; transient failures wait up to base * 2^(attempt-1), full jitter.")
    backoff_cap: float = Field(300.0, gt=0, description="Seconds; the longest exponential backoff.")
    retry_after_floor: float = Field(1.0, ge=0, description="Seconds; a Retry-After below this is raised to it.")
    retry_after_cap: float = Field(900.0, gt=0, description="Seconds; a Retry-After above this is lowered to it (the API documents 600).")
    retry_after_jitter: float = Field(0.5, ge=0, description="Seconds; up to this much is added to a Retry-After (never less), so jobs do not return at once.")
    visibility_timeout: int = Field(60, ge=10, description=(
        "Seconds before Redis hands a killed worker's unacknowledged jobs to another worker. After a crash they are called"
        " again within this + 2 s (kombu looks every 2 s; 30 s more if the dead worker held the look's lock), and a"
        " message lost between kombu's pop and its unacked record within this + 45 s (re-published after this + 35 s,"
        " looked for every 10 s): 62 s (92 s) and 105 s with the default 60, inside 2 minutes. It must exceed the longest"
        " API call (`PAYQ_HTTP_CONNECT_TIMEOUT` + `PAYQ_HTTP_READ_TIMEOUT`, 13 s by default) by 5 s, or a job still"
        " running is handed out twice. Lower: jobs back sooner after a crash, and only shorter API timeouts fit."
        " Higher: room for slower API calls, and that much longer a wait after every crash."
    ))
    job_retention_days: float = Field(30.0, gt=0, description="Days a job record (its idempotency key) is kept; enqueueing the same job within it is a no-op.")
    dead_letter_retention_days: float = Field(30.0, gt=0, description="Days a dead-letter entry is kept before it is trimmed.")
    deferred_poll_interval: float = Field(0.1, gt=0, description="Seconds between checks for due deferred jobs.")
    deferred_batch_size: int = Field(1000, ge=1, description="Due deferred jobs moved back to their queue per check.")
    rate_limits: dict[str, float] = Field(
        default_factory=dict,
        description="Calls per second each endpoint may take, as JSON: `{\"capture\": 30, \"feedback\": 30}` (operations `capture`, "
                    "`cancel`, `refund`, `feedback`). A ceiling for every worker together; unset means none is configured "
                    "(payq still learns one from the API's 429s).",
    )
    redis_retry_seconds: float = Field(3.0, ge=0, description="Seconds the producer keeps retrying an unreachable Redis before it fails.")
    worker_pool: Literal["threads", "prefork", "gevent", "solo"] = Field("threads", description=(
        "Celery pool of `celery -A workers.app worker` (its `worker_pool`; `-P` on the command line wins), the local"
        " stack and docker-compose."
    ))
    worker_concurrency: int = Field(32, ge=1, description="Jobs one worker process runs at once (its `worker_concurrency`; `-c` wins).")
    worker_processes: int = Field(4, ge=1, description="Worker processes the local stack and docker-compose run; 2 per core drained fastest (measured).")
    flower_basic_auth: SecretStr | None = Field(None, description="`user:password` for Flower's basic auth in the local stack and docker-compose.")
    serve_host: str = Field("127.0.0.1", description="Address `payq serve` (the HTTP intake and the console) listens on.")
    serve_port: int = Field(8088, ge=0, le=65535, description="Port `payq serve` listens on (0 picks a free one).")
    intake_tokens: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Store backends' tokens for the HTTP intake, as JSON: the SHA-256 hex of each token -> the storeIds it may use "
                    "(`payq token new` prints both). Tokens themselves are never stored.",
    )
    notify_url: str | None = Field(None, description="Where outcome notifications are POSTed (Standard Webhooks); unset: none are sent.")
    notify_secret: SecretStr | None = Field(None, description="`whsec_…` secret that signs outcome notifications (required with notify_url).")
    notify_max_attempts: int = Field(8, ge=1, description=(
        "Deliveries of one notification before it is dead-lettered as `notify-failed` (retried after 5 s, 5 min, 30 min, 2 h, 5 h,"
        " 10 h, 10 h: about 27 h with 8)."))
    console_basic_auth: SecretStr | None = Field(
        None, description="`user:password` for the operators' console at `/console/` on `payq serve`; unset: the console is off.",
    )
    console_read_only: bool = Field(False, description="`true` hides every action of the console and refuses them.")
    flower_url: str | None = Field(
        None, description="Flower's address as operators' browsers reach it (e.g. `https://ops.example.com/flower`); the console links "
                          "each dead letter's job to its task page there. Unset: no link. Without credentials in it.",
    )

    @field_validator("rate_limits")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, rate in value.items() if not (rate > 0 and math.isfinite(rate))]
        if bad:
            raise ValueError(f"calls per second must be a number greater than 0 (for {', '.join(sorted(bad))})")
        return value

    @field_validator("intake_tokens")
    @classmethod
    def _token_hashes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = [key[:12] for key in value if not _SHA256_HEX.fullmatch(key)]
        if bad:
            raise ValueError(f"keys must be the SHA-256 hex of a token (64 lowercase hex digits), not the token: {', '.join(bad)}…")
        empty = [key[:12] for key, stores in value.items() if not stores]
        if empty:
            raise ValueError(f"each token must name at least one storeId ({', '.join(empty)}… names none)")
        return value

    @field_validator("console_basic_auth")
    @classmethod
    def _user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, colon, password = value.get_secret_value().partition(":")
            if not (user and colon and password):
                raise ValueError("must be user:password, both non-empty")
        return value

    @field_validator("flower_url")
    @classmethod
    def _plain_web_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// address")
        if parts.username is not None or parts.password is not None:
            # the console shows this address in every dead letter's page: a password in it would be shown too
            raise ValueError("must not contain credentials: Flower asks the browser for its own login")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _notify_needs_both(self) -> Settings:
        if (self.notify_url is None) != (self.notify_secret is None):
            raise ValueError("PAYQ_NOTIFY_URL and PAYQ_NOTIFY_SECRET go together: set both, or neither")
        if self.notify_secret is not None and not self.notify_secret.get_secret_value().startswith("whsec_"):
            raise ValueError("PAYQ_NOTIFY_SECRET must be a Standard Webhooks secret, whsec_ followed by base64")
        if self.notify_url is not None and (urlsplit(self.notify_url).scheme not in ("http", "https") or not urlsplit(self.notify_url).hostname):
            raise ValueError("PAYQ_NOTIFY_URL must be an http:// or https:// URL")
        return self

    @field_validator("visibility_timeout")
    @classmethod
    def _longest_call_fits(cls, visibility_timeout: int, info: ValidationInfo) -> int:
        # Under the threads pool nothing stops a job at the task time limit (Celery does not enforce
        # it there): the HTTP timeouts are what bound it. A job outliving the visibility timeout is
        # handed to a second worker while the first still calls the API.
        connect, read = info.data.get("http_connect_timeout"), info.data.get("http_read_timeout")
        if connect is not None and read is not None and connect + read > visibility_timeout - _JOB_MARGIN:
            raise ValueError(
                f"PAYQ_VISIBILITY_TIMEOUT ({visibility_timeout} s) must exceed the longest API call, PAYQ_HTTP_CONNECT_TIMEOUT"
                f" + PAYQ_HTTP_READ_TIMEOUT ({connect:g} + {read:g} s), by at least {_JOB_MARGIN} s: raise it to"
                f" {math.ceil(connect + read) + _JOB_MARGIN} or lower the timeouts"
            )
        return visibility_timeout

    @model_validator(mode="after")
    def _sigv4_needs_region(self) -> Settings:
        if self.api_auth == "sigv4" and not self.aws_region:
            raise ValueError("PAYQ_AWS_REGION is required when PAYQ_API_AUTH=sigv4")
        if self.http_pool_size < self.worker_concurrency and self.worker_pool == "threads":
            # a thread waiting for a pooled connection is a thread not working
            object.__setattr__(self, "http_pool_size", self.worker_concurrency)
        return self

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # a Redis password must not reach a log line through repr(settings)
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in ("redis_url", "notify_url") and isinstance(value, str) else value

    @property
    def task_time_limit(self) -> int:
        """Hard limit on one job: below the visibility timeout, so a slow job is never handed out twice.

        The longest API call + 30 s, at most the visibility timeout - 5 s: 43 s with the defaults.
        """
        return int(min(self.visibility_timeout - _JOB_MARGIN, self.http_connect_timeout + self.http_read_timeout + 30))


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{username}:***@{hostport}"))
