"""Building the signer: botocore's credential chain, resolved once, refreshed per request, and clear errors when it cannot be."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import RefreshableCredentials

from config.settings import Settings
from payapi.client import json_post
from payapi.errors import ConfigurationError
from payapi.signing import SigV4Signer, build_signer, signer_factory
from tests.sigv4.conftest import ACCESS_KEY, REGION, SECRET_KEY, SESSION_TOKEN


def sigv4_settings(**overrides: Any) -> Settings:
    """Settings that sign, in REGION unless overridden."""
    return Settings(**{"api_auth": "sigv4", "aws_region": REGION, **overrides})


def signed_authorization(signer: SigV4Signer) -> str:
    """The Authorization header ``signer`` puts on a small request."""
    prepared = json_post("http://127.0.0.1:8080/v1/refund", "/v1/refund", b"{}")
    signer(prepared)
    return str(prepared.headers["Authorization"])


def test_no_credentials_anywhere_is_a_configuration_error_naming_the_ways_to_give_them() -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_signer(sigv4_settings())
    message = str(caught.value)
    assert "no AWS credentials were found" in message
    assert "AWS_ACCESS_KEY_ID" in message and "PAYQ_AWS_PROFILE" in message


def test_an_access_key_without_its_secret_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    with pytest.raises(ConfigurationError, match="AWS_SECRET_ACCESS_KEY"):
        build_signer(sigv4_settings())


def test_expired_credentials_are_a_configuration_error_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "2020-01-01T00:00:00Z")
    with pytest.raises(ConfigurationError, match="still expired") as caught:
        build_signer(sigv4_settings())
    assert SECRET_KEY not in str(caught.value) and SESSION_TOKEN not in str(caught.value)


def test_an_unknown_profile_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="nope"):
        build_signer(sigv4_settings(aws_profile="nope"))


def test_a_profile_from_the_shared_credentials_file_signs(aws_isolated: Path) -> None:
    (aws_isolated / "aws-credentials").write_text(f"[payq]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    signer = build_signer(sigv4_settings(aws_profile="payq"))
    assert f"Credential={ACCESS_KEY}/" in signed_authorization(signer)


def test_environment_credentials_take_the_configured_region_and_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    signer = build_signer(sigv4_settings(aws_region="eu-central-1", aws_service="payments"))
    assert "/eu-central-1/payments/aws4_request, " in signed_authorization(signer)


def test_refreshable_credentials_are_refreshed_by_botocore_before_they_expire() -> None:
    # A role's credentials that expire in a minute: inside botocore's refresh window, so the next signing renews them.
    now = datetime.datetime.now(datetime.UTC)
    generations = iter(["AKIDSECONDGENERATION", "AKIDTHIRDGENERATION1"])

    def refresh() -> dict[str, str]:
        return {"access_key": next(generations), "secret_key": "s2", "token": "t2",
                "expiry_time": (now + datetime.timedelta(hours=1)).isoformat()}

    credentials = RefreshableCredentials.create_from_metadata(
        {"access_key": "AKIDFIRSTGENERATION1", "secret_key": "s1", "token": "t1",
         "expiry_time": (now + datetime.timedelta(minutes=1)).isoformat()},
        refresh_using=refresh, method="assume-role",
    )
    signer = SigV4Signer(credentials, REGION, "execute-api")
    assert "Credential=AKIDSECONDGENERATION/" in signed_authorization(signer)
    assert "Credential=AKIDSECONDGENERATION/" in signed_authorization(signer), "fresh for an hour: not refreshed again"


def test_no_signer_without_sigv4() -> None:
    assert signer_factory(Settings(api_auth="none")) is None
    factory = signer_factory(sigv4_settings())
    assert factory is not None


def test_the_signer_never_shows_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    signer = build_signer(sigv4_settings())
    assert SECRET_KEY not in repr(signer) and SESSION_TOKEN not in repr(signer)


def test_botocore_debug_output_is_capped_because_it_holds_the_session_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    botocore_log = logging.getLogger("botocore")
    monkeypatch.setattr(botocore_log, "level", logging.NOTSET)
    build_signer(sigv4_settings())
    assert not logging.getLogger("botocore.auth").isEnabledFor(logging.DEBUG)
