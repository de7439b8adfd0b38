"""payq's signer against the verifying sandbox over real HTTP: the signed request is the request sent."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from config.settings import Settings
from payapi.client import PaymentClient
from payapi.models import CaptureRequest, RefundRequest
from payapi.operations import Operation
from payapi.outcomes import Outcome, Permanent, Success
from payapi.signing import build_signer
from tests.sigv4.conftest import ACCESS_KEY, REGION, SECRET_KEY, SESSION_TOKEN, WRONG_SECRET_KEY
from tests.support.names import path_of
from tests.support.sandbox import SandboxProcess

CAPTURE = CaptureRequest.model_validate({"storeId": "s1", "shoppingTripId": "t-http", "amount": {"amount": "19.99", "code": "USD"}})


def client_for(api: SandboxProcess, monkeypatch: pytest.MonkeyPatch, secret: str | None = SECRET_KEY, token: str | None = None) -> PaymentClient:
    """A client signing with these environment credentials, or not signing at all (``secret`` None)."""
    settings = Settings(api_base_url=api.url, api_auth="sigv4" if secret else "none", aws_region=REGION)
    if secret is None:
        return PaymentClient(settings)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    if token is not None:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    return PaymentClient(settings, signer=build_signer(settings))


def test_a_signed_capture_is_accepted_with_the_scope_in_its_authorization(api: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = client_for(api, monkeypatch).call(Operation.CAPTURE, CAPTURE)

    assert outcome == Success()
    [entry] = api.requests(path_of("capture"))
    assert entry["status"] == 200
    auth = entry["headers"]["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/") and f"/{REGION}/execute-api/aws4_request" in auth
    assert "X-Amz-Security-Token" not in entry["headers"], "long-term credentials carry no token"


def test_temporary_credentials_send_the_session_token_signed(api: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = client_for(api, monkeypatch, token=SESSION_TOKEN).call(Operation.CAPTURE, CAPTURE)

    assert outcome == Success()
    [entry] = api.requests(path_of("capture"))
    assert entry["headers"]["X-Amz-Security-Token"] == SESSION_TOKEN
    assert "x-amz-security-token" in entry["headers"]["Authorization"].split("SignedHeaders=")[1].split(",")[0]


def test_an_unsigned_request_is_refused_naming_the_missing_header(api: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = client_for(api, monkeypatch, secret=None).call(Operation.CAPTURE, CAPTURE)

    assert isinstance(outcome, Permanent) and outcome.failure.status == 403
    assert outcome.failure.error_msg is not None and "missing Authorization header" in outcome.failure.error_msg


def test_a_wrong_secret_is_a_permanent_403_naming_the_signature(api: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = client_for(api, monkeypatch, secret=WRONG_SECRET_KEY).call(Operation.REFUND, RefundRequest.model_validate({
        "storeId": "s1", "shoppingTripId": "t-http", "amount": {"amount": "1.00", "code": "USD"},
        "refundRequestId": "00000000-0000-4000-8000-000000000001", "refundReasonCode": "OTHER",
    }))

    assert isinstance(outcome, Permanent) and outcome.failure.status == 403
    assert outcome.failure.error_msg is not None and "wrong signature" in outcome.failure.error_msg
    assert WRONG_SECRET_KEY not in outcome.failure.describe() + outcome.failure.error_msg
    assert [e["status"] for e in api.requests()] == [403]


@pytest.mark.parametrize("change", [
    pytest.param(lambda body: body.replace(b"19.99", b"99.99"), id="same-length"),
    pytest.param(lambda body: body[:-1] + b',"extra":1}', id="longer"),
])
def test_a_body_changed_after_signing_is_refused(api: SandboxProcess, monkeypatch: pytest.MonkeyPatch, change: Callable[[bytes], bytes]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    signer = build_signer(Settings(api_base_url=api.url, api_auth="sigv4", aws_region=REGION))
    client = PaymentClient(Settings(api_base_url=api.url))  # no signer of its own: it sends what it is given, as it is
    request = CaptureRequest.model_validate({"storeId": "s1", "shoppingTripId": "t-tamper", "amount": {"amount": "19.99", "code": "USD"}})

    def send(altered: bool) -> Outcome:
        prepared = client.prepare(Operation.CAPTURE, request)
        assert b'"amount":19.99' in prepared.body
        signer(prepared)
        if altered:  # with the new Content-Length, as a rewriting proxy would
            body = change(prepared.body)
            prepared = dataclasses.replace(prepared, body=body, headers={**prepared.headers, "Content-Length": str(len(body))})
        return client.send(Operation.CAPTURE, request, prepared)

    refused = send(altered=True)
    assert isinstance(refused, Permanent) and refused.failure.status == 403
    assert "wrong signature" in (refused.failure.error_msg or "")
    assert send(altered=False) == Success(), "the same request, unaltered, is accepted"
