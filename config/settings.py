"""Every payq setting, in one typed object read from ``PAYQ_*`` variables and ``.env``.

Build it once at a process's entry point (``Settings()``) and pass it in; the
settings table in docs/operating.md is generated from the field descriptions here.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from config.redis_address import check_url, is_sentinel, redact_url

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


_CONSOLE_USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
# bcrypt's modular crypt format: $2b$ (or $2a$, $2y$ as htpasswd -B writes it), the cost, 22 characters of salt and 31 of hash
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


class StoreLimit(BaseModel):
    """A store's entry in ``PAYQ_STORE_LIMITS``: its ``weight`` in the fair share of a paced endpoint's turns, its cap of calls a second, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float | None = Field(None, gt=0, le=1000, allow_inf_nan=False, description="the store's share against 1 for a store not named")
    calls_per_second: float | None = Field(None, gt=0, le=100_000, allow_inf_nan=False,
                                           description="the most calls the store's jobs make at each endpoint in a second")

    @model_validator(mode="after")
    def _says_something(self) -> StoreLimit:
        if self.weight is None and self.calls_per_second is None:
            raise ValueError("a store's limits name a weight, a calls_per_second, or both")
        return self


class ConsoleUser(BaseModel):
    """A console user in ``PAYQ_CONSOLE_USERS``: a role and the bcrypt hash of a password (never the password)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["viewer", "operator"]
    hash: SecretStr

    @field_validator("hash")
    @classmethod
    def _bcrypt(cls, value: SecretStr) -> SecretStr:
        if not _BCRYPT_HASH.fullmatch(value.get_secret_value()):
            # never the value: it may be a password typed where its hash belongs
            raise ValueError("must be a bcrypt hash ($2b$12$…, 60 characters; payq console user NAME makes one), not a password")
        return value


class Settings(BaseSettings):
    """payq's configuration; each field is ``PAYQ_<NAME>`` in the environment."""

    # env_ignore_empty: `PAYQ_X=` means unset (its default), as a shell, compose's `${X:-}` or an empty .env line write it
    model_config = SettingsConfigDict(env_prefix="PAYQ_", env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True)

    redis_url: str = Field("redis://localhost:6379/0", description=(
        "Redis for queues, deferred jobs, dead letters and job records: `redis://`, `rediss://`, `unix://`, or Sentinels in"
        " Celery's form `sentinel://HOST:PORT;sentinel://HOST:PORT` (`sentinel://:PASSWORD@HOST:PORT/DB`: the primary's"
        " password and database), with `PAYQ_REDIS_SENTINEL_MASTER`."
    ))
    redis_sentinel_master: str | None = Field(
        None, description="With a `sentinel://` URL: the primary's service name the Sentinels watch (`sentinel monitor NAME …`).",
    )
    redis_sentinel_password: SecretStr | None = Field(None, description="With a `sentinel://` URL: the Sentinels' own password, if they need one.")
    redis_min_replicas: int = Field(0, ge=0, description=(
        "The floor of Redis replicas in sync below which payq refuses work. A write payq reports (an enqueue's answer, a"
        " claim before its API call, an outcome before its message is acknowledged) waits (Redis `WAIT`) for the replicas"
        " connected and in sync now, however many. 0: with none left (a failover that lost the only replica) payq goes on"
        " with the primary alone and reports itself degraded; 1 or more: below that, enqueues are refused (exit 75, HTTP"
        " 503) and workers wait, taking no work, until enough replicas are back."
    ))
    redis_replicas_timeout: float = Field(1.0, gt=0, description=(
        "Seconds one `WAIT` waits for the replicas in sync; one that does not confirm by then leaves the in-sync set until it"
        " catches up (an enqueue left below `PAYQ_REDIS_MIN_REPLICAS` fails: exit 75, HTTP 503)."
    ))
    api_base_url: str = Field("http://127.0.0.1:8080", description="Base URL of the payment API (the sandbox locally).")
    api_auth: Literal["none", "sigv4"] = Field("none", description="`sigv4` signs every API request with AWS Signature Version 4; `none` is for the sandbox.")
    aws_region: str | None = Field(None, description="AWS region for SigV4 signing (required when `PAYQ_API_AUTH=sigv4`).")
    aws_service: str = Field("execute-api", description="AWS service name in the SigV4 scope (API Gateway's name, an assumption).")
    aws_profile: str | None = Field(None, description="Named profile from the shared AWS config files; unset uses the standard credential chain.")
    http_connect_timeout: float = Field(3.0, gt=0, description="Seconds to wait for a TCP connection to the API.")
    http_read_timeout: float = Field(10.0, gt=0, description=(
        "Seconds to wait for the API's response once connected. With the connect timeout, the longest API call, which"
        " the task time limit covers (`config/celery.py`)."
    ))
    http_pool_size: int = Field(64, ge=1, description="Keep-alive connections kept per worker process; at least the worker's concurrency.")
    max_attempts: int = Field(8, ge=1, description="API calls a job may make before it is dead-lettered as `retries-exhausted`.")
    backoff_base: float = Field(1.0, gt=0, description="Seconds; transient failures wait up to base * 2^(attempt-1), full jitter.")
    backoff_cap: float = Field(300.0, gt=0, description="Seconds; the longest exponential backoff.")
    retry_after_floor: float = Field(1.0, ge=0, description="Seconds; a Retry-After below this is raised to it.")
    retry_after_cap: float = Field(900.0, gt=0, description="Seconds; a Retry-After above this is lowered to it (the API documents 600).")
    retry_after_jitter: float = Field(0.5, ge=0, description="Seconds; up to this much is added to a Retry-After (never less), so jobs do not return at once.")
    lease_seconds: float = Field(10.0, ge=2, le=300, description=(
        "Seconds a worker holds a job it began without renewing it. Every worker process writes a heartbeat every"
        " fifth of this, renewing the leases of the jobs it runs; a job whose lease lapses (its worker was killed,"
        " stopped or cut off) is given back to its queue by any live worker within about this + 1 s, and a copy of"
        " the job delivered while its lease stands calls nothing. Lower: a dead worker's jobs back sooner; a pause"
        " of a worker (GC, VM) longer than it hands its jobs to another worker."
    ))
    job_retention_days: float = Field(3.0, gt=0, description=(
        "Days a job record (its idempotency key and outcome) is kept after the job settled; enqueueing the same job within"
        " it is a no-op (and one with other fields a conflict). Store backends resend within minutes or hours; 3 days also"
        " covers a backend down over a long weekend. Each day costs RAM: see docs/scaling.md."
    ))
    trip_books_retention_days: float = Field(8.0, ge=7, description=(
        "Days a trip's books (its capture, cancel and refunds) are kept after its latest job was enqueued or its capture"
        " settled: at least the API's 7-day refund window, so a refund late in it is still checked against what was"
        " captured and refunded; the default adds a day's margin."
    ))
    dead_letter_retention_days: float = Field(30.0, gt=0, description="Days a dead-letter entry is kept before it is trimmed.")
    deferred_poll_interval: float = Field(0.1, gt=0, description="Seconds between checks for due deferred jobs.")
    deferred_batch_size: int = Field(1000, ge=1, description="Due deferred jobs moved back to their queue per check.")
    rate_limits: dict[str, float] = Field(
        default_factory=dict,
        description="Calls per second each endpoint may take, as JSON: `{\"capture\": 30, \"feedback\": 30}` (operations `capture`, "
                    "`cancel`, `refund`, `feedback`). A ceiling for every worker together; unset means none is configured "
                    "(payq still learns one from the API's 429s).",
    )
    fair_share: bool = Field(True, description=(
        "Share a paced endpoint's turns between stores (round-robin by `storeId`, a store alone still gets the whole pace), so"
        " one store's flood does not hold every other store's jobs behind it. `false`: first come, first served."
    ))
    store_limits: dict[str, StoreLimit] = Field(default_factory=dict, description=(
        "Per-store limits, as JSON: each `storeId` -> `{\"weight\": w, \"calls_per_second\": c}`, either or both. `weight`"
        " (greater than 0, at most 1000, needs `PAYQ_FAIR_SHARE`): the store's share of a paced endpoint's turns against 1 for"
        " every store not named: `{\"flagship\": {\"weight\": 3}}` gives that store three turns to another waiting store's one;"
        " a store alone still gets the whole pace. `calls_per_second`: the most calls the store's jobs make at each endpoint in"
        " a second, paced or not; its other jobs wait in the deferred set. Name a handful of stores: every turn looks each up."
    ))
    store_backlog_cap: int | None = Field(None, ge=1, description=(
        "Jobs one store may have open (enqueued, not yet succeeded or dead-lettered) when it enqueues over HTTP: past it,"
        " `payq serve` answers that store 429 with Retry-After and writes nothing; other stores are not affected. Unset: no cap."
    ))
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
    serve_public_url: str | None = Field(None, description=(
        "The intake's address as store backends reach it (e.g. `https://payq.example.com`, behind the TLS proxy), the server"
        " `/openapi.json` names. Unset: `/`, relative to wherever the document was read."
    ))
    serve_forwarded_allow_ips: str | None = Field(None, description=(
        "Proxies whose `X-Forwarded-Host`, `-Proto` and `-For` `payq serve` believes, as uvicorn's `forwarded_allow_ips`: addresses"
        " or networks, comma-separated (`127.0.0.1,10.0.0.0/8`), or `*` for any peer. Unset: none; the headers are dropped, and the"
        " console compares a form's `Origin` with `Host` alone."
    ))
    intake_tokens: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Store backends' tokens for the HTTP intake, as JSON: the SHA-256 hex of each token -> the storeIds it may use "
                    "(`payq token new` prints both). Tokens themselves are never stored.",
    )
    notify_url: str | None = Field(None, description="Where outcome notifications are POSTed (Standard Webhooks); unset: none are sent.")
    notify_secret: SecretStr | None = Field(None, description=(
        "`whsec_…` secret that signs outcome notifications (required with `PAYQ_NOTIFY_URL`): `whsec_` and the base64 of"
        " a random key (24 to 64 bytes recommended); `payq notify secret` prints a new one."
    ))
    notify_max_attempts: int = Field(8, ge=1, description=(
        "Failed deliveries of one notification before it is dead-lettered as `notify-failed` (retried after 5 s, 5 min, 30 min,"
        " 2 h, 5 h, 10 h, 10 h: about 27 h with 8). A receiver's 429 or 503 with Retry-After is a request for time, not a"
        " failure: it counts as none, and waits within the same span."))
    console_users: dict[str, ConsoleUser] = Field(default_factory=dict, description=(
        "The operators' console users (`/console/` on `payq serve`), as JSON: each name -> its `role` (`viewer` reads,"
        " `operator` also replays, purges and lifts pauses) and its password's bcrypt `hash`:"
        " `{\"ana\": {\"role\": \"operator\", \"hash\": \"$2b$12$…\"}}` (`payq console user NAME` makes an entry; a `.env`"
        " file keeps it out of the environment). With neither this nor `PAYQ_CONSOLE_BASIC_AUTH` the console is off."
    ))
    console_basic_auth: SecretStr | None = Field(None, description=(
        "`user:password`: one more console user, an operator, whose password is this text itself; prefer `PAYQ_CONSOLE_USERS`,"
        " which holds only hashes."
    ))
    console_read_only: bool = Field(False, description=(
        "`true`: every console user is a viewer on this `payq serve`, whatever their role: no action is shown, every one refused."
    ))
    serve_docs: bool = Field(False, description=(
        "`true` serves `/docs` (Swagger UI) and `/redoc` on `payq serve`, to a console user (any role) or a store backend's token,"
        " with their scripts and styles from payq itself. Off: both answer 404. `/openapi.json` is public and the same either way."
    ))
    flower_url: str | None = Field(
        None, description="Flower's address as operators' browsers reach it (e.g. `https://ops.example.com/flower`); the console links "
                          "each dead letter's job to its task page there. Unset: no link. Without credentials in it.",
    )

    @field_validator("redis_url")
    @classmethod
    def _usable_redis_url(cls, value: str) -> str:
        return check_url(value)  # its errors read after the variable's name: "PAYQ_REDIS_URL: must be …"

    @model_validator(mode="after")
    def _sentinel_needs_master(self) -> Settings:
        sentinel = is_sentinel(self.redis_url)
        if sentinel and not self.redis_sentinel_master:
            raise ValueError("PAYQ_REDIS_SENTINEL_MASTER is required with a sentinel:// PAYQ_REDIS_URL: the primary's service name")
        if not sentinel and (self.redis_sentinel_master or self.redis_sentinel_password):
            raise ValueError("PAYQ_REDIS_SENTINEL_MASTER and PAYQ_REDIS_SENTINEL_PASSWORD go with a sentinel:// PAYQ_REDIS_URL only")
        return self

    @property
    def min_replicas(self) -> int:
        """The floor of replicas in sync below which payq refuses work (``PAYQ_REDIS_MIN_REPLICAS``)."""
        return self.redis_min_replicas

    @property
    def uses_sentinel(self) -> bool:
        """Whether payq finds its primary through Sentinel."""
        return is_sentinel(self.redis_url)

    @field_validator("job_retention_days", "dead_letter_retention_days")
    @classmethod
    def _at_least_a_second(cls, value: float) -> float:
        # Redis keeps keys for whole seconds: a retention under one would be an EXPIRE of 0, deleting a record as it settles
        if value * 86400 < 1:
            raise ValueError(f"must be at least one second ({1 / 86400:.8f} days); {value:g} days keeps nothing")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, rate in value.items() if not (rate > 0 and math.isfinite(rate))]
        if bad:
            raise ValueError(f"calls per second must be a number greater than 0 (for {', '.join(sorted(bad))})")
        return value

    @field_validator("store_limits")
    @classmethod
    def _store_ids(cls, value: dict[str, StoreLimit]) -> dict[str, StoreLimit]:
        bad = [store for store in value if not store or store != store.strip()]
        if bad:
            raise ValueError(f"each key must be a storeId, not empty nor padded with spaces: {', '.join(repr(b) for b in bad)}")
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

    @field_validator("console_users")
    @classmethod
    def _user_names(cls, value: dict[str, ConsoleUser]) -> dict[str, ConsoleUser]:
        bad = [name for name in value if not _CONSOLE_USER_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"user names must be 1 to 64 of A-Z a-z 0-9 . _ @ - (no ':'): not {', '.join(repr(n[:64]) for n in bad)}")
        return value

    @model_validator(mode="after")
    def _one_user_per_name(self) -> Settings:
        if self.console_basic_auth is not None:
            name = self.console_basic_auth.get_secret_value().partition(":")[0]
            if name in self.console_users:
                raise ValueError(f"PAYQ_CONSOLE_BASIC_AUTH's user {name!r} is in PAYQ_CONSOLE_USERS too: keep one of them")
        return self

    @model_validator(mode="after")
    def _weights_need_fair_share(self) -> Settings:
        if any(limit.weight is not None for limit in self.store_limits.values()) and not self.fair_share:
            raise ValueError("PAYQ_STORE_LIMITS weighs the stores' fair share, which PAYQ_FAIR_SHARE=false turns off: set one of them")
        return self

    @field_validator("console_basic_auth")
    @classmethod
    def _user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, colon, password = value.get_secret_value().partition(":")
            if not (user and colon and password):
                raise ValueError("must be user:password, both non-empty")
        return value

    @field_validator("flower_url", "serve_public_url")
    @classmethod
    def _plain_web_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// address")
        if parts.username is not None or parts.password is not None:
            # the console shows Flower's address in every dead letter's page, /openapi.json shows the intake's: a password would be shown too
            raise ValueError("must not contain credentials: it is shown to whoever reads the page")
        return value.rstrip("/")

    @field_validator("serve_forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "*":
            return value
        bad = []
        for entry in (part.strip() for part in value.split(",")):
            try:
                ipaddress.ip_network(entry, strict=False) if "/" in entry else ipaddress.ip_address(entry)
            except ValueError:
                bad.append(entry)
        if bad:
            # uvicorn would take such an entry as a literal that never matches an address: a proxy silently not believed
            raise ValueError(f"must be IP addresses or networks, comma-separated, or *: not {', '.join(repr(b) for b in bad)}")
        return value

    @field_validator("notify_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        # checked at start: a bad address found at the first delivery would fail every notification, one after the other
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// address")
        return value

    @model_validator(mode="after")
    def _notify_needs_both(self) -> Settings:
        if (self.notify_url is None) != (self.notify_secret is None):
            raise ValueError("PAYQ_NOTIFY_URL and PAYQ_NOTIFY_SECRET go together: set both, or neither")
        if self.notify_secret is not None and not _is_webhook_secret(self.notify_secret.get_secret_value()):
            # never the value: it is a secret, and the message goes to logs
            raise ValueError("PAYQ_NOTIFY_SECRET must be a Standard Webhooks secret: whsec_ followed by the base64 of a key"
                             " (payq notify secret prints a new one)")
        return self

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
    def call_seconds(self) -> float:
        """The longest API call: the connect and read timeouts (the task time limit covers it: ``config.celery.task_time_limit``)."""
        return self.http_connect_timeout + self.http_read_timeout


def _is_webhook_secret(secret: str) -> bool:
    """A secret the ``standardwebhooks`` library, which signs with it, takes (a key, not empty), written as every receiver's library reads it.

    The Python library skips characters outside base64's alphabet and adds
    missing padding, where the Go and JavaScript ones refuse both: a secret
    with a stray character would sign with a key its receiver does not hold,
    so the strict form is asked for, ``whsec_`` and padded standard base64.
    """
    prefix, _, key = secret.partition("_")
    try:
        base64.b64decode(key, validate=True)
        Webhook(secret)
    except (binascii.Error, EmptyWebhookSecretError):
        return False
    return prefix == "whsec"


def env_name(field: str) -> str:
    """The environment variable of a setting: ``notify_secret`` is ``PAYQ_NOTIFY_SECRET``."""
    return f"PAYQ_{field.upper()}"


class InvalidSettings(ValueError):
    """The settings in the environment break a rule; ``problems`` names each variable and its rule (``PAYQ_X: rule``)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_settings(**overrides: Any) -> Settings:
    """``Settings()`` from ``PAYQ_*`` and ``.env``; :class:`InvalidSettings` naming every bad variable, never pydantic's field names."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise InvalidSettings(_problems(exc)) from None
    except SettingsError as exc:
        # pydantic-settings could not decode a JSON setting: it names the field in its own words
        found = re.search(r'field "(\w+)"', str(exc))
        name = env_name(found.group(1)) if found else "a PAYQ_ variable"
        cause = exc.__cause__
        reason = f" ({str(cause).split(':')[0]})" if isinstance(cause, json.JSONDecodeError) else ""
        raise InvalidSettings([f"{name}: must be JSON{reason}, or unset"]) from None


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        message = item["msg"].removeprefix("Value error, ")
        if not loc:  # a rule across settings: its message names the variables itself
            problems.append(message)
            continue
        inner = f" ({'.'.join(loc[1:])})" if len(loc) > 1 else ""
        problems.append(f"{env_name(loc[0])}{inner}: {message[0].lower()}{message[1:]}")
    return problems


__all__ = ["ConsoleUser", "InvalidSettings", "Settings", "env_name", "load_settings", "redact_url"]
