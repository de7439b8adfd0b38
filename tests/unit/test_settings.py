"""Settings: one typed object read from ``PAYQ_*`` variables (and ``.env``), and URLs safe to log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config.celery import UNACKED_MUTEX_EXPIRE, UNACKED_RESTORE_INTERVAL, lost_after
from config.settings import Settings, redact_url
from workers.housekeeping import HOUSEKEEPING_EVERY


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
        ("visibility_timeout", 60),
        ("job_retention_days", 30.0),
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
        ("PAYQ_VISIBILITY_TIMEOUT", "3600", "visibility_timeout", 3600),
        ("PAYQ_WORKER_POOL", "prefork", "worker_pool", "prefork"),
        ("PAYQ_WORKER_CONCURRENCY", "8", "worker_concurrency", 8),
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
        ("PAYQ_VISIBILITY_TIMEOUT", "5", "visibility_timeout"),
        ("PAYQ_WORKER_CONCURRENCY", "0", "worker_concurrency"),
        ("PAYQ_DEFERRED_BATCH_SIZE", "0", "deferred_batch_size"),
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
    ("visibility", "connect", "read", "limit"),
    [
        pytest.param(60, 3.0, 10.0, 43, id="defaults-http-timeouts-plus-30s"),
        pytest.param(300, 3.0, 10.0, 43, id="long-visibility-timeout"),
        pytest.param(30, 3.0, 10.0, 25, id="short-visibility-timeout-wins"),
        pytest.param(18, 3.0, 10.0, 13, id="shortest-visibility-timeout-for-these-http-timeouts"),
        pytest.param(10, 1.0, 4.0, 5, id="minimum-visibility-timeout"),
        pytest.param(3600, 10.0, 120.0, 160, id="long-http-timeouts"),
    ],
)
def test_a_job_time_limit_stays_below_the_visibility_timeout(visibility: int, connect: float, read: float, limit: int) -> None:
    configured = build_settings(visibility_timeout=visibility, http_connect_timeout=connect, http_read_timeout=read)

    assert configured.task_time_limit == limit
    assert configured.task_time_limit < configured.visibility_timeout


@pytest.mark.parametrize(
    ("variables", "shortest"),
    [
        pytest.param({"PAYQ_VISIBILITY_TIMEOUT": "17"}, 18, id="default-http-timeouts"),
        pytest.param({"PAYQ_HTTP_READ_TIMEOUT": "60"}, 68, id="default-visibility-timeout"),
        pytest.param({"PAYQ_VISIBILITY_TIMEOUT": "10", "PAYQ_HTTP_CONNECT_TIMEOUT": "0.5", "PAYQ_HTTP_READ_TIMEOUT": "4.6"}, 11,
                     id="fractions-round-up"),
    ],
)
def test_a_visibility_timeout_the_longest_api_call_does_not_fit_in_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], shortest: int,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError) as refused:
        build_settings()

    (error,) = refused.value.errors()
    assert error["loc"] == ("visibility_timeout",)
    assert "PAYQ_HTTP_CONNECT_TIMEOUT + PAYQ_HTTP_READ_TIMEOUT" in error["msg"]
    assert f"raise it to {shortest} " in error["msg"]


def test_a_visibility_timeout_5_seconds_above_the_longest_api_call_is_accepted() -> None:
    assert build_settings(visibility_timeout=18, http_connect_timeout=3, http_read_timeout=10).visibility_timeout == 18


def test_with_the_defaults_a_killed_workers_jobs_run_again_within_two_minutes() -> None:
    defaults = build_settings()

    # kombu hands back a dead worker's messages a scan after the visibility timeout, or a lock's expiry later
    assert defaults.visibility_timeout + UNACKED_RESTORE_INTERVAL + UNACKED_MUTEX_EXPIRE <= 120
    # a message lost between kombu's pop and its unacked record: the sweep's cutoff, and its interval
    assert lost_after(defaults) + HOUSEKEEPING_EVERY <= 120
    # ... which kombu's restore of the messages it has comes well before
    assert lost_after(defaults) > defaults.visibility_timeout + UNACKED_RESTORE_INTERVAL + UNACKED_MUTEX_EXPIRE
    # no job runs into its visibility timeout, and a job's claim has ended when the sweep looks
    assert defaults.http_connect_timeout + defaults.http_read_timeout <= defaults.task_time_limit
    assert defaults.task_time_limit + 5 <= defaults.visibility_timeout < lost_after(defaults)


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


@pytest.mark.parametrize("url", ["ftp://hooks.example/payq", "hooks.example/payq", "http://"])
def test_a_notification_url_must_be_http_or_https(url: str) -> None:
    with pytest.raises(ValidationError, match="PAYQ_NOTIFY_URL must be an http:// or https:// URL"):
        build_settings(notify_url=url, notify_secret="whsec_c2VjcmV0LXNpZ25pbmcta2V5")
