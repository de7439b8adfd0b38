"""Settings: one typed object read from ``PAYQ_*`` variables (and ``.env``), and URLs safe to log."""

from __future__ import annotations

import base64
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config.celery import OUTCOME_PATIENCE, STEPS_PATIENCE, celery_config, task_time_limit
from config.redis_address import SentinelAddress, parse_sentinel
from config.settings import InvalidSettings, Settings, StoreLimit, load_settings, redact_url
from tasks.jobs.books import REFUND_WINDOW_SECONDS
from tasks.redis.replicas import ReplicaState
from tasks.stats import Replication, replication
from workers.housekeeping import RECOVER_EVERY


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PAYQ_ variable from the developer's shell, and a working directory without a ``.env``."""
    for name in list(os.environ):
        if name.upper().startswith("PAYQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def build_settings(**values: Any) -> Settings:
    """Settings from the environment alone (no ``.env``), plus ``values``."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# --- defaults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "default"),
    [
        ("redis_url", "redis://localhost:6379/0"),
        ("api_base_url", "http://127.0.0.1:8080"),
        ("api_auth", "none"),
        ("aws_region", None),
        ("aws_service", "execute-api"),
        ("aws_profile", None),
        ("http_connect_timeout", 3.0),
        ("http_read_timeout", 10.0),
        ("max_attempts", 8),
        ("backoff_base", 1.0),
        ("backoff_cap", 300.0),
        ("retry_after_floor", 1.0),
        ("retry_after_cap", 900.0),
        ("retry_after_jitter", 0.5),
        ("lease_seconds", 10.0),
        ("job_retention_days", 3.0),
        ("trip_books_retention_days", 8.0),
        ("dead_letter_retention_days", 30.0),
        ("deferred_poll_interval", 0.1),
        ("deferred_batch_size", 1000),
        ("redis_retry_seconds", 3.0),
        ("worker_pool", "threads"),
        ("worker_concurrency", 32),
        ("flower_basic_auth", None),
    ],
)
def test_defaults_apply_when_nothing_is_set(field: str, default: object) -> None:
    assert getattr(build_settings(), field) == default


def test_a_trip_s_books_outlive_the_api_s_refund_window_by_default_and_at_the_least() -> None:
    books = Settings.model_fields["trip_books_retention_days"]
    assert Settings().trip_books_retention_days * 86400 > REFUND_WINDOW_SECONDS
    assert any(getattr(rule, "ge", None) == REFUND_WINDOW_SECONDS / 86400 for rule in books.metadata)


def test_the_documented_retry_after_of_600_seconds_fits_the_default_window() -> None:
    defaults = build_settings()

    assert defaults.retry_after_floor <= 600 <= defaults.retry_after_cap


def test_every_setting_is_documented() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]

    assert undocumented == []


# --- reading PAYQ_ variables ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw", "field", "value"),
    [
        ("PAYQ_REDIS_URL", "redis://redis:6379/3", "redis_url", "redis://redis:6379/3"),
        ("PAYQ_API_BASE_URL", "https://api.example.com", "api_base_url", "https://api.example.com"),
        ("PAYQ_AWS_REGION", "eu-west-1", "aws_region", "eu-west-1"),
        ("PAYQ_AWS_PROFILE", "payments", "aws_profile", "payments"),
        ("PAYQ_HTTP_CONNECT_TIMEOUT", "1.5", "http_connect_timeout", 1.5),
        ("PAYQ_HTTP_READ_TIMEOUT", "20", "http_read_timeout", 20.0),
        ("PAYQ_MAX_ATTEMPTS", "3", "max_attempts", 3),
        ("PAYQ_BACKOFF_CAP", "60", "backoff_cap", 60.0),
        ("PAYQ_RETRY_AFTER_FLOOR", "0", "retry_after_floor", 0.0),
        ("PAYQ_RETRY_AFTER_CAP", "600", "retry_after_cap", 600.0),
        ("PAYQ_WORKER_POOL", "prefork", "worker_pool", "prefork"),
        ("PAYQ_WORKER_CONCURRENCY", "8", "worker_concurrency", 8),
        ("PAYQ_STORE_LIMITS", '{"flagship": {"weight": 3}}', "store_limits", {"flagship": StoreLimit(weight=3.0)}),
        ("PAYQ_STORE_LIMITS", '{"kiosk": {"calls_per_second": 2.5}}', "store_limits", {"kiosk": StoreLimit(calls_per_second=2.5)}),
        ("payq_max_attempts", "5", "max_attempts", 5),
    ],
)
def test_a_payq_variable_sets_its_field(monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, field: str, value: object) -> None:
    monkeypatch.setenv(variable, raw)

    assert getattr(build_settings(), field) == value


def test_sigv4_is_enabled_by_auth_and_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYQ_API_AUTH", "sigv4")
    monkeypatch.setenv("PAYQ_AWS_REGION", "us-east-1")

    configured = build_settings()

    assert (configured.api_auth, configured.aws_region) == ("sigv4", "us-east-1")


def test_flower_credentials_are_read_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYQ_FLOWER_BASIC_AUTH", "admin:hunter2")

    configured = build_settings()

    assert configured.flower_basic_auth is not None
    assert configured.flower_basic_auth.get_secret_value() == "admin:hunter2"
    assert "hunter2" not in repr(configured)
    assert "hunter2" not in str(configured)


def test_variables_without_the_prefix_and_unknown_payq_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_ATTEMPTS", "2")
    monkeypatch.setenv("PAYQ_NO_SUCH_SETTING", "1")

    assert build_settings().max_attempts == 8


def test_a_dotenv_file_in_the_working_directory_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    (clean_environment / ".env").write_text("PAYQ_MAX_ATTEMPTS=4\nPAYQ_WORKER_CONCURRENCY=6\n")
    monkeypatch.setenv("PAYQ_WORKER_CONCURRENCY", "12")

    configured = Settings()

    assert (configured.max_attempts, configured.worker_concurrency) == (4, 12)


@pytest.mark.parametrize(
    ("variable", "raw", "field"),
    [
        ("PAYQ_API_AUTH", "basic", "api_auth"),
        ("PAYQ_WORKER_POOL", "eventlet", "worker_pool"),
        ("PAYQ_MAX_ATTEMPTS", "0", "max_attempts"),
        ("PAYQ_MAX_ATTEMPTS", "three", "max_attempts"),
        ("PAYQ_HTTP_READ_TIMEOUT", "0", "http_read_timeout"),
        ("PAYQ_HTTP_CONNECT_TIMEOUT", "-1", "http_connect_timeout"),
        ("PAYQ_BACKOFF_BASE", "0", "backoff_base"),
        ("PAYQ_RETRY_AFTER_FLOOR", "-1", "retry_after_floor"),
        ("PAYQ_RETRY_AFTER_CAP", "0", "retry_after_cap"),
        ("PAYQ_WORKER_CONCURRENCY", "0", "worker_concurrency"),
        ("PAYQ_DEFERRED_BATCH_SIZE", "0", "deferred_batch_size"),
        ("PAYQ_JOB_RETENTION_DAYS", "0", "job_retention_days"),
        ("PAYQ_JOB_RETENTION_DAYS", "0.00001", "job_retention_days"),  # 0.864 s: under Redis's whole second, a 0 s TTL
        ("PAYQ_DEAD_LETTER_RETENTION_DAYS", "0.000001", "dead_letter_retention_days"),
        ("PAYQ_TRIP_BOOKS_RETENTION_DAYS", "6.5", "trip_books_retention_days"),  # shorter than the 7-day refund window
    ],
)
def test_a_bad_value_is_refused_naming_its_field(monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, field: str) -> None:
    monkeypatch.setenv(variable, raw)

    with pytest.raises(ValueError, match=field):
        build_settings()


# --- rules across fields -------------------------------------------------------------------------


def test_sigv4_without_a_region_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYQ_API_AUTH", "sigv4")

    with pytest.raises(ValueError, match="PAYQ_AWS_REGION is required when PAYQ_API_AUTH=sigv4"):
        build_settings()


def test_sigv4_with_an_empty_region_is_an_error() -> None:
    with pytest.raises(ValueError, match="PAYQ_AWS_REGION is required"):
        build_settings(api_auth="sigv4", aws_region="")


def test_no_auth_needs_no_region() -> None:
    assert build_settings(api_auth="none").aws_region is None


@pytest.mark.parametrize(
    ("pool", "pool_size", "concurrency", "effective"),
    [
        pytest.param("threads", 4, 32, 32, id="threads-pool-raised-to-concurrency"),
        pytest.param("threads", 100, 32, 100, id="threads-larger-pool-kept"),
        pytest.param("prefork", 4, 32, 4, id="prefork-pool-kept-per-process"),
        pytest.param("gevent", 4, 32, 4, id="gevent-pool-kept"),
    ],
)
def test_the_http_pool_holds_a_connection_for_every_worker_thread(pool: str, pool_size: int, concurrency: int, effective: int) -> None:
    configured = build_settings(worker_pool=pool, http_pool_size=pool_size, worker_concurrency=concurrency)

    assert configured.http_pool_size == effective


@pytest.mark.parametrize(
    ("connect", "read", "limit"),
    [
        pytest.param(3.0, 10.0, 103, id="defaults-30s-steps-13s-call-60s-outcome"),
        pytest.param(1.0, 4.0, 95, id="short-http-timeouts"),
        pytest.param(10.0, 120.0, 220, id="long-http-timeouts"),
    ],
)
def test_a_job_time_limit_covers_its_steps_patience_the_longest_api_call_and_the_outcomes_patience(
    connect: float, read: float, limit: int,
) -> None:
    configured = build_settings(http_connect_timeout=connect, http_read_timeout=read)

    assert task_time_limit(configured) == limit == int(STEPS_PATIENCE + configured.call_seconds + OUTCOME_PATIENCE)
    assert celery_config(configured, ["q"], {})["task_time_limit"] == limit


def test_a_retired_visibility_timeout_in_the_environment_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # kombu keeps no unacknowledged set any more (workers/redis_transport.py): an old deployment's setting must not stop it
    monkeypatch.setenv("PAYQ_VISIBILITY_TIMEOUT", "300")

    assert not hasattr(build_settings(), "visibility_timeout")


def test_with_the_defaults_a_killed_workers_jobs_are_back_within_12_s() -> None:
    defaults = build_settings()

    # a dead holder's last heartbeat came before its death: its in-flight lists and leases are judged a lease after it,
    # and a sweep looks every second; whether it had begun a job or only fetched it
    assert defaults.lease_seconds + RECOVER_EVERY <= 12


def test_settings_are_immutable_once_built() -> None:
    configured = build_settings()

    with pytest.raises(ValueError):
        configured.max_attempts = 1  # type: ignore[misc]


# --- redact_url ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0", id="password-only"),
        pytest.param("redis://payq:s3cret@redis:6379/0", "redis://payq:***@redis:6379/0", id="user-and-password"),
        pytest.param("rediss://payq:s3cret@cache.example.com:6380/2", "rediss://payq:***@cache.example.com:6380/2", id="tls"),
        pytest.param("redis://payq:s3cret@redis/0", "redis://payq:***@redis/0", id="no-port"),
        pytest.param("redis://:s3cret@redis:6379/0?ssl_cert_reqs=none", "redis://:***@redis:6379/0?ssl_cert_reqs=none", id="query-kept"),
        pytest.param("redis://:p%40ss%3Aword@redis:6379/0", "redis://:***@redis:6379/0", id="percent-encoded-password"),
        pytest.param("redis://payq:@redis:6379/0", "redis://payq:***@redis:6379/0", id="empty-password"),
        pytest.param("redis://redis:6379/0", "redis://redis:6379/0", id="no-credentials-unchanged"),
        pytest.param("redis://payq@redis:6379/0", "redis://payq@redis:6379/0", id="user-without-password-unchanged"),
        pytest.param("unix:///run/redis.sock?db=0", "unix:///run/redis.sock?db=0", id="unix-socket-unchanged"),
    ],
)
def test_redact_url_hides_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "redis://:s3cret@[::1]:6379/0", "redis://:***@[::1]:6379/0",
            id="ipv6-host-keeps-brackets",
        ),
        pytest.param(
            "redis://:s3cret@redis:63790000/0", "redis://:***@redis:63790000/0",
            id="port-out-of-range-still-redacted",
        ),
        pytest.param(
            "redis://:s3cret@redis:port/0", "redis://:***@redis:port/0",
            id="non-numeric-port-still-redacted",
        ),
    ],
)
def test_redact_url_keeps_the_host_and_port_exactly_as_written(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_never_contains_the_password() -> None:
    for url in ("redis://:hunter2@redis:6379/0", "redis://payq:hunter2@redis/1", "rediss://a:hunter2@h:1/2?x=1"):
        assert "hunter2" not in redact_url(url)


# --- empty values, and errors that name the variable ---------------------------------------------


@pytest.mark.parametrize("variable", ["PAYQ_INTAKE_TOKENS", "PAYQ_CONSOLE_BASIC_AUTH", "PAYQ_NOTIFY_URL", "PAYQ_NOTIFY_SECRET",
                                      "PAYQ_RATE_LIMITS", "PAYQ_FLOWER_URL", "PAYQ_AWS_REGION", "PAYQ_MAX_ATTEMPTS"])
def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "")

    field = variable.removeprefix("PAYQ_").lower()
    assert getattr(load_settings(_env_file=None), field) == getattr(build_settings(), field)


def test_an_empty_line_in_a_dotenv_file_means_unset(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text("PAYQ_INTAKE_TOKENS=\nPAYQ_CONSOLE_BASIC_AUTH=\n")

    configured = load_settings()

    assert (configured.intake_tokens, configured.console_basic_auth) == ({}, None)


@pytest.mark.parametrize(
    ("variable", "raw", "says"),
    [
        ("PAYQ_MAX_ATTEMPTS", "three", "PAYQ_MAX_ATTEMPTS: input should be a valid integer"),
        ("PAYQ_CONSOLE_BASIC_AUTH", "nocolon", "PAYQ_CONSOLE_BASIC_AUTH: must be user:password"),
        ("PAYQ_INTAKE_TOKENS", "{bad", "PAYQ_INTAKE_TOKENS: must be JSON"),
        ("PAYQ_INTAKE_TOKENS", '{"abc": ["s1"]}', "PAYQ_INTAKE_TOKENS: keys must be the SHA-256 hex"),
        ("PAYQ_RATE_LIMITS", "[1, 2]", "PAYQ_RATE_LIMITS: input should be a valid dictionary"),
        ("PAYQ_RATE_LIMITS", '{"capture": 0}', "PAYQ_RATE_LIMITS: calls per second must be a number greater than 0"),
        ("PAYQ_STORE_LIMITS", '{"A": {"weight": 0}}', "PAYQ_STORE_LIMITS (A.weight): input should be greater than 0"),
        ("PAYQ_STORE_LIMITS", '{"A": {"weight": 1e999}}', "PAYQ_STORE_LIMITS (A.weight): input should be a finite number"),
        ("PAYQ_STORE_LIMITS", '{"A": {"weight": 2, "cap": 5}}', "PAYQ_STORE_LIMITS (A.cap): extra inputs are not permitted"),
        ("PAYQ_STORE_LIMITS", '{"": {"weight": 2}}', "PAYQ_STORE_LIMITS: each key must be a storeId"),
        ("PAYQ_STORE_LIMITS", '{"A": {}}', "PAYQ_STORE_LIMITS (A): a store's limits name a weight, a calls_per_second, or both"),
        ("PAYQ_STORE_LIMITS", '{"A": {"calls_per_second": 0}}', "PAYQ_STORE_LIMITS (A.calls_per_second): input should be greater than 0"),
        ("PAYQ_FLOWER_URL", "ftp://x", "PAYQ_FLOWER_URL: must be an http:// or https:// address"),
        ("PAYQ_NOTIFY_URL", "store.example/hooks", "PAYQ_NOTIFY_URL: must be an http:// or https:// address"),
        ("PAYQ_SERVE_PUBLIC_URL", "payq.example.com", "PAYQ_SERVE_PUBLIC_URL: must be an http:// or https:// address"),
    ],
)
def test_a_bad_variable_is_named_by_its_environment_name(monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, says: str) -> None:
    monkeypatch.setenv(variable, raw)

    with pytest.raises(InvalidSettings) as raised:
        load_settings(_env_file=None)

    assert [p for p in raised.value.problems if p.startswith(says)], raised.value.problems
    assert not any(variable.removeprefix("PAYQ_").lower() + ":" in p for p in raised.value.problems), "not the Python field"


@pytest.mark.parametrize("secret", [
    "whsec_wrong",              # the prefix, and not base64 (the Standard Webhooks library raised binascii.Error mid-start)
    "whsec_",                   # no key at all
    "whsec_ c2VjcmV0",          # a space
    "c2VjcmV0LXNpZ25pbmcta2V5",  # no prefix
    "whsec-c2VjcmV0LXNpZ25pbmcta2V5",
])
def test_a_malformed_notify_secret_is_refused_naming_the_variable_and_not_the_value(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("PAYQ_NOTIFY_URL", "https://store.example/hooks")
    monkeypatch.setenv("PAYQ_NOTIFY_SECRET", secret)

    with pytest.raises(InvalidSettings) as raised:
        load_settings(_env_file=None)

    [problem] = raised.value.problems
    assert problem.startswith("PAYQ_NOTIFY_SECRET must be a Standard Webhooks secret") and "payq notify secret" in problem
    assert secret.removeprefix("whsec_") not in problem or not secret.removeprefix("whsec_")


def test_a_new_notify_secret_is_accepted_and_signs_with_the_standard_webhooks_library() -> None:
    from standardwebhooks import Webhook

    from tasks.notify.events import new_secret

    secret = new_secret()
    configured = load_settings(_env_file=None, notify_url="https://store.example/hooks", notify_secret=secret)

    assert configured.notify_secret is not None and configured.notify_secret.get_secret_value() == secret
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32 and new_secret() != secret
    now = int(time.time())
    signature = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, UTC), '{"ok":1}')
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    assert Webhook(secret).verify('{"ok":1}', headers) == {"ok": 1}


# --- Redis through Sentinel: Celery's sentinel:// form, and how replicas are counted ------------------


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("sentinel://s1:26379;sentinel://s2:26380", SentinelAddress((("s1", 26379), ("s2", 26380)), 0, None)),
        ("sentinel://s1", SentinelAddress((("s1", 26379),), 0, None)),  # Sentinel's own port by default
        ("sentinel://:pw@s1:1/3;sentinel://:pw@s2:2/3", SentinelAddress((("s1", 1), ("s2", 2)), 3, "pw")),
        ("sentinel://:p%40ss@s1:1/2;sentinel://s2:2", SentinelAddress((("s1", 1), ("s2", 2)), 2, "p@ss")),  # given once is enough
        ("sentinel://s1:1;", SentinelAddress((("s1", 1),), 0, None)),  # a trailing separator
    ],
)
def test_a_sentinel_url_names_each_sentinel_and_the_primarys_database_and_password(url: str, address: SentinelAddress) -> None:
    assert parse_sentinel(url) == address


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("sentinel://s1:1;redis://r:6379", "every address must be sentinel://HOST:PORT"),
        ("sentinel://s1:1/x", "must be a number"),
        ("sentinel://s1:1/1;sentinel://s2:2/2", "disagree"),
        ("sentinel://:a@s1:1;sentinel://:b@s2:2", "disagree"),
        ("sentinel://s1:99999", "no valid port"),
    ],
)
def test_a_bad_sentinel_url_is_refused_naming_the_rule(url: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        parse_sentinel(url)


def test_a_sentinel_url_is_redacted_address_by_address() -> None:
    assert redact_url("sentinel://:pw@s1:1/0;sentinel://:pw@s2:2/0") == "sentinel://:***@s1:1/0;sentinel://:***@s2:2/0"


def test_sentinel_needs_the_primarys_name_and_the_error_names_the_variable() -> None:
    with pytest.raises(ValidationError, match="PAYQ_REDIS_SENTINEL_MASTER is required"):
        build_settings(redis_url="sentinel://s1:26379")


@pytest.mark.parametrize(("url", "master"), [("redis://r:6379/0", None), ("sentinel://s1:26379", "payq")])
def test_the_replica_floor_defaults_to_zero_with_sentinel_or_without(url: str, master: str | None) -> None:
    # issue 29: a failover that leaves no replica must not stop payq; an operator raises the floor on purpose
    assert build_settings(redis_url=url, redis_sentinel_master=master).redis_min_replicas == 0
    assert build_settings(redis_url=url, redis_sentinel_master=master, redis_min_replicas=2).redis_min_replicas == 2


def test_the_sentinel_settings_without_a_sentinel_url_are_refused() -> None:
    with pytest.raises(ValidationError, match="go with a sentinel:// PAYQ_REDIS_URL only"):
        build_settings(redis_sentinel_master="payq")


def test_an_unknown_scheme_is_refused_naming_the_variable() -> None:
    with pytest.raises(InvalidSettings, match="PAYQ_REDIS_URL: must be redis://"):
        load_settings(_env_file=None, redis_url="http://r:6379")


def test_the_broker_gets_kombus_sentinel_options_and_the_sentinels_password() -> None:
    settings = build_settings(redis_url="sentinel://:pw@s1:1;sentinel://s2:2", redis_sentinel_master="payq", redis_sentinel_password="sp")
    options = celery_config(settings, ["q"], {})["broker_transport_options"]

    assert options["master_name"] == "payq"
    assert options["sentinel_kwargs"]["password"] == "sp"
    assert "master_name" not in celery_config(build_settings(), ["q"], {})["broker_transport_options"]


ONLINE, LATE, SYNCING = {"state": "online", "lag": 0}, {"state": "online", "lag": 3}, {"state": "wait_bgsave", "lag": 0}


@pytest.mark.parametrize(
    ("info", "floor", "failover", "expected"),
    [
        pytest.param({"connected_slaves": 0}, 0, False, Replication("p:1", 0, 0, 0, ReplicaState.SAFE), id="one-redis-no-failover"),
        pytest.param({"slave0": ONLINE, "slave1": {"state": "online", "lag": 1}}, 0, True, Replication("p:1", 2, 2, 0, ReplicaState.SAFE),
                     id="two-in-sync"),
        pytest.param({"slave0": LATE}, 0, True, Replication("p:1", 1, 0, 0, ReplicaState.DEGRADED), id="fallen-behind"),
        pytest.param({"slave0": SYNCING}, 0, False, Replication("p:1", 1, 0, 0, ReplicaState.DEGRADED), id="still-syncing"),
        pytest.param({"connected_slaves": 0}, 0, True, Replication("p:1", 0, 0, 0, ReplicaState.DEGRADED), id="failover-left-none"),
        pytest.param({"connected_slaves": 0}, 1, True, Replication("p:1", 0, 0, 1, ReplicaState.REFUSING), id="below-the-floor"),
        pytest.param({"slave0": ONLINE}, 1, True, Replication("p:1", 1, 1, 1, ReplicaState.SAFE), id="at-the-floor"),
    ],
)
def test_stats_count_replicas_in_sync_as_payqs_writes_do(info: dict[str, Any], floor: int, failover: bool, expected: Replication) -> None:
    assert replication({"role": "master", **info}, "p:1", floor, failover) == expected


def test_store_weights_without_the_fair_share_they_weigh_are_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYQ_STORE_LIMITS", '{"A": {"weight": 2}}')
    monkeypatch.setenv("PAYQ_FAIR_SHARE", "false")

    with pytest.raises(InvalidSettings) as raised:
        load_settings(_env_file=None)

    assert any("PAYQ_STORE_LIMITS" in p and "PAYQ_FAIR_SHARE=false" in p for p in raised.value.problems), raised.value.problems


def test_a_store_s_cap_of_calls_needs_no_fair_share_and_names_no_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYQ_STORE_LIMITS", '{"A": {"calls_per_second": 5}}')
    monkeypatch.setenv("PAYQ_FAIR_SHARE", "false")

    limit = load_settings(_env_file=None).store_limits["A"]

    assert (limit.calls_per_second, limit.weight) == (5.0, None)  # BEGIN weighs a store not named 1
