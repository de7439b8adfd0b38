"""Fixtures for the SigV4 tier: a sandbox that requires signatures, and an AWS environment that cannot reach the network.

The ``api`` fixture is overridden here, so the shared ``settings``,
``producer`` and ``start_worker`` fixtures point at the verifying sandbox.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sandbox import SandboxProcess

ACCESS_KEY = "AKIDPAYQTESTKEY00001"
SECRET_KEY = "payq-sigv4-secret-Kq7wXz3vRb8N"
WRONG_SECRET_KEY = "payq-sigv4-wrong-Jd8sLm2pTe5Q"
SESSION_TOKEN = "payq-sigv4-session-token-Zr4nTq9yUc1H//long+token=="
REGION = "us-east-1"
SERVICE = "execute-api"


def sigv4_env(secret_key: str = SECRET_KEY, *, token: str | None = None, access_key: str = ACCESS_KEY) -> dict[str, str]:
    """A worker's environment for signing with these credentials (read by botocore's environment provider)."""
    env = {
        "PAYQ_API_AUTH": "sigv4",
        "PAYQ_AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
    }
    if token is not None:
        env["AWS_SESSION_TOKEN"] = token
    return env


def secret_fragments(*secrets: str) -> list[str]:
    """Each secret and its first and last 12 characters: a truncated secret has leaked too."""
    return [piece for s in secrets for piece in (s, s[:12], s[-12:])]


def isolate_aws(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """No AWS_* from the host, empty shared config files, no instance metadata: botocore sees only what a test gives it."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name in ("PAYQ_API_AUTH", "PAYQ_AWS_REGION", "PAYQ_AWS_SERVICE", "PAYQ_AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    config, credentials = directory / "aws-config", directory / "aws-credentials"
    config.touch()
    credentials.touch()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True)
def aws_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every test here (and every process it starts) resolves AWS credentials from its own environment only."""
    isolate_aws(monkeypatch, tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def sigv4_sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """An auto-registering sandbox that requires SigV4 for ACCESS_KEY/SECRET_KEY in REGION.

    The secret goes in through the environment, as an operator should pass
    it (a command line is visible in ps).
    """
    with pytest.MonkeyPatch.context() as mp:
        isolate_aws(mp, tmp_path_factory.mktemp("sandbox-aws"))
        mp.setenv("PAYQ_SANDBOX_SECRET_KEY", SECRET_KEY)
        process = SandboxProcess("--auto-register", "--require-sigv4", "--access-key", ACCESS_KEY, "--region", REGION)
    with process:
        yield process


@pytest.fixture
def api(sigv4_sandbox_process: SandboxProcess) -> SandboxProcess:
    """The verifying sandbox with an empty ledger, log and fault script."""
    sigv4_sandbox_process.reset()
    return sigv4_sandbox_process
