"""docker-compose.yml: valid against the Compose specification, and the choices docs/operating.md promises.

Every command a service runs from payq's image (and its health check) must exist in the
package: each is run here with ``--help``, so a renamed command or option fails this test,
not a deployment.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from config.settings import Settings, env_name

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
# CI has shared/ beside the clone
COMPOSE_SPEC = REPO.parent / "shared" / "compose-spec.json"
PAYQ_SERVICES = ("worker", "serve", "flower", "metrics", "sandbox")
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    """docker-compose.yml as compose reads it (YAML merge keys resolved)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def interpolate(text: str) -> str:
    """What compose makes of ``text`` with nothing set: ``${X:-default}`` is the default, ``${X:?error}`` a stand-in."""
    def value(match: re.Match[str]) -> str:
        kind, word = match.group(2), match.group(3)
        if kind in (":-", "-"):
            return word
        if kind in (":?", "?"):
            return "required-value"
        return ""
    return _VARIABLE.sub(value, text).replace("$$", "$")


def default_of(text: str) -> str:
    """The default in ``${X:-default}``."""
    match = _VARIABLE.fullmatch(text)
    assert match and match.group(2) == ":-", f"{text!r} is not ${{VAR:-default}}"
    return match.group(3)


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    if not COMPOSE_SPEC.exists():
        pytest.skip(f"{COMPOSE_SPEC} not found: the Compose schema is expected in shared/ beside the clone")
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SPEC.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


def test_redis_keeps_an_append_only_file_never_evicts_and_is_not_published() -> None:
    doc = compose()
    redis = doc["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in doc["volumes"], "a named volume, declared at the top level"
    assert "healthcheck" in redis
    assert "ports" not in redis


def test_workers_can_be_scaled_restart_by_themselves_and_sign_requests_in_production() -> None:
    worker = compose()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker, "--scale needs neither a fixed name nor a host port"
    assert worker["restart"] == "unless-stopped"
    assert "-d celery@$$HOSTNAME" in worker["healthcheck"]["test"][1], "the check pings this worker, not any worker"
    assert default_of(worker["environment"]["PAYQ_API_AUTH"]) == "sigv4"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_worker_pool_concurrency_and_processes_defaults_are_the_settings_defaults() -> None:
    worker = compose()["services"]["worker"]
    # the plain command, which takes pool and concurrency from the settings (tests/jobs/test_worker_command.py)
    assert not {"-P", "--pool", "-c", "--concurrency"} & set(worker["command"])
    environment = worker["environment"]
    assert default_of(environment["PAYQ_WORKER_POOL"]) == Settings.model_fields["worker_pool"].default
    assert int(default_of(environment["PAYQ_WORKER_CONCURRENCY"])) == Settings.model_fields["worker_concurrency"].default
    assert int(default_of(worker["deploy"]["replicas"])) == Settings.model_fields["worker_processes"].default


def test_flower_takes_basic_auth_from_the_environment_and_is_published_on_loopback_only() -> None:
    flower = compose()["services"]["flower"]
    assert "PAYQ_FLOWER_BASIC_AUTH" in flower["environment"]["FLOWER_BASIC_AUTH"]
    assert not any("auth" in part for part in flower["command"]), "credentials never on the command line"
    assert flower["ports"] == ["127.0.0.1:${PAYQ_FLOWER_PORT:-5555}:5555"], "/metrics needs no login: keep it off public interfaces"
    assert "--port=5555" in flower["command"]


def test_the_intake_takes_its_tokens_from_the_environment_and_is_published_on_loopback_only() -> None:
    serve = compose()["services"]["serve"]
    environment = serve["environment"]
    assert environment["PAYQ_INTAKE_TOKENS"] == "${PAYQ_INTAKE_TOKENS:-}", "from the host or .env; empty means none"
    assert environment["PAYQ_REDIS_URL"] == compose()["services"]["worker"]["environment"]["PAYQ_REDIS_URL"]
    assert serve["ports"] == ["127.0.0.1:${PAYQ_SERVE_PORT:-8088}:8088"], "bearer tokens stay off public interfaces without TLS"
    command = serve["command"]
    assert command[:2] == ["payq", "serve"] and command[command.index("--port") + 1] == "8088"
    assert "8088/readyz" in serve["healthcheck"]["test"][-1]
    assert serve["depends_on"]["redis"]["condition"] == "service_healthy"
    assert serve["restart"] == "unless-stopped"
    assert Settings.model_fields["serve_port"].default == 8088, "the host port's default is the setting's"


@pytest.mark.parametrize("service", ["worker", "serve", "flower", "metrics"])
def test_every_setting_reaches_every_payq_process(service: str) -> None:
    # a new field in config/settings.py fails here until docker-compose.yml passes its variable through
    environment = compose()["services"][service]["environment"]
    missing = [env_name(name) for name in Settings.model_fields if env_name(name) not in environment]

    assert missing == []


def test_a_setting_the_host_leaves_unset_reaches_the_container_empty_and_means_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # `${PAYQ_X:-}`: the host's (or .env's) value, else empty; payq reads an empty variable as unset
    environment = compose()["services"]["worker"]["environment"]
    chosen = {"PAYQ_REDIS_URL", "PAYQ_API_BASE_URL", "PAYQ_API_AUTH", "PAYQ_WORKER_POOL", "PAYQ_WORKER_CONCURRENCY"}
    passed = {name: value for name, value in environment.items() if name.startswith("PAYQ_") and name not in chosen}
    assert {name: value for name, value in passed.items() if value != f"${{{name}:-}}"} == {}

    for name in [n for n in os.environ if n.startswith("PAYQ_")]:
        monkeypatch.delenv(name)
    defaults = Settings(_env_file=None, redis_url="redis://redis:6379/0", api_base_url="required-value")  # type: ignore[call-arg]

    for name, value in environment.items():
        if name.startswith("PAYQ_"):
            monkeypatch.setenv(name, interpolate(value) if name != "PAYQ_API_AUTH" else "none")
    in_container = Settings(_env_file=None)  # type: ignore[call-arg]

    assert in_container == defaults


def test_the_sandbox_runs_only_in_the_dev_profile() -> None:
    services = compose()["services"]
    assert services["sandbox"]["profiles"] == ["dev"]
    assert all("profiles" not in services[name] for name in ("redis", "worker", "serve", "flower", "metrics"))


def test_the_ha_profile_adds_a_replica_and_three_sentinels_a_quorum_of_two_watching_redis() -> None:
    services = compose()["services"]
    ha = sorted(name for name, service in services.items() if service.get("profiles") == ["ha"])
    assert ha == ["redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"]
    assert services["redis-replica"]["command"][1:4] == ["--replicaof", "redis", "6379"]
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        script = services[name]["command"][-1]
        assert "sentinel monitor payq redis 6379 2" in script and script.rstrip().endswith("--sentinel")
    # payq's services take the Sentinels' settings from the host (PAYQ_REDIS_URL=sentinel://...)
    for name in ("worker", "serve", "flower"):
        env = services[name]["environment"]
        assert "PAYQ_REDIS_SENTINEL_MASTER" in env and "PAYQ_REDIS_MIN_REPLICAS" in env


def _commands() -> list[Any]:
    params = []
    for name in PAYQ_SERVICES:
        service = compose()["services"][name]
        params.append(pytest.param([interpolate(part) for part in service["command"]], id=f"{name}-command"))
        test = service.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD-SHELL" and "celery" in test[1]:
            params.append(pytest.param(shlex.split(interpolate(test[1])), id=f"{name}-healthcheck"))
    return params


def _resolve(argv: list[str]) -> list[str]:
    """The same program from this test environment: the venv's console scripts, or ``python -m celery``."""
    script = Path(sys.executable).parent / argv[0]
    if script.exists():
        return [str(script), *argv[1:]]
    if argv[0] == "celery":
        return [sys.executable, "-m", "celery", *argv[1:]]
    if argv[0] == "payq":
        return [sys.executable, "-c", "from payq.cli import main; main()", *argv[1:]]
    return argv


@pytest.mark.parametrize("argv", _commands())
def test_every_service_command_exists_in_the_package(argv: list[str]) -> None:
    # a clean environment: the image has no PAYQ_* but what compose sets
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYQ_", "FLOWER_"))}
    result = subprocess.run([*_resolve(argv), "--help"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(argv)} --help exited {result.returncode}:\n{result.stderr[-2000:]}"
    assert "Usage" in result.stdout or "usage" in result.stdout


def test_the_monitoring_profile_runs_prometheus_with_payqs_rules_scraping_the_metrics_service() -> None:
    services = compose()["services"]
    prometheus, metrics = services["prometheus"], services["metrics"]
    assert prometheus["profiles"] == ["monitoring"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["payq-rules.yml"]
    payq_job = next(job for job in config["scrape_configs"] if job["job_name"] == "payq")
    assert payq_job["static_configs"][0]["targets"] == ["metrics:9808"]
    assert metrics["command"][:2] == ["payq", "metrics"] and metrics["command"][metrics["command"].index("--port") + 1] == "9808"
    assert metrics["ports"] == ["127.0.0.1:${PAYQ_METRICS_PORT:-9808}:9808"], "published on loopback only"
    assert all(port.startswith("127.0.0.1:") for port in prometheus["ports"])
