"""The sandbox's SigV4 check, in process: a table of requests signed by payq's signer at a fixed date, then changed."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable

import pytest
from botocore.credentials import Credentials

from payapi.client import json_post
from payapi.signing import SigV4Signer
from sandbox.sigv4 import SigV4Verifier
from tests.sigv4.conftest import ACCESS_KEY, REGION, SECRET_KEY, SERVICE, SESSION_TOKEN, WRONG_SECRET_KEY

SIGNED_AT = datetime.datetime(2024, 1, 31, 23, 58, 30, tzinfo=datetime.UTC)
HOST = "127.0.0.1:8080"
PATH = "/v1/capture/charge"
BODY = b'{"storeId":"s1","shoppingTripId":"t1","amount":{"amount":19.99,"code":"USD"}}'

Request = tuple[str, str, dict[str, str], bytes]


@pytest.fixture(autouse=True)
def fixed_signing_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore stamps X-Amz-Date from this function; pin it so every signature here is of a known instant."""
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: SIGNED_AT)


def sign(
    body: bytes = BODY, *, secret: str = SECRET_KEY, token: str | None = None, access_key: str = ACCESS_KEY,
    region: str = REGION, service: str = SERVICE, extra: dict[str, str] | None = None,
) -> Request:
    """(method, path, headers, body) as the sandbox receives a request signed by payq's signer."""
    prepared = json_post(f"http://{HOST}{PATH}", PATH, body)
    prepared.headers.update(extra or {})
    SigV4Signer(Credentials(access_key, secret, token), region, service)(prepared)
    headers = dict(prepared.headers)
    headers["Host"] = HOST  # what the HTTP client adds from the URL
    return "POST", PATH, headers, prepared.body


def verifier(skew: float = 0.0, region: str | None = REGION) -> SigV4Verifier:
    """A verifier for the test keys whose clock reads the signing time plus ``skew`` seconds."""
    return SigV4Verifier(ACCESS_KEY, SECRET_KEY, region=region, service=SERVICE, clock=lambda: SIGNED_AT.timestamp() + skew)


def without(name: str) -> Callable[[Request], Request]:
    """Drop a header."""

    def change(request: Request) -> Request:
        method, path, headers, body = request
        return method, path, {k: v for k, v in headers.items() if k.lower() != name.lower()}, body
    return change


def with_header(name: str, value: str) -> Callable[[Request], Request]:
    """Set a header (replacing it if present)."""

    def change(request: Request) -> Request:
        method, path, headers, body = request
        return method, path, {**headers, name: value}, body
    return change


def with_body(new: bytes) -> Callable[[Request], Request]:
    """Replace the body."""

    def change(request: Request) -> Request:
        return request[0], request[1], request[2], new
    return change


def with_path(new: str) -> Callable[[Request], Request]:
    """Replace the path."""

    def change(request: Request) -> Request:
        return request[0], new, request[2], request[3]
    return change


def unchanged(request: Request) -> Request:
    """The request as signed."""
    return request


def test_a_request_signed_by_payqs_signer_passes() -> None:
    assert verifier()(*sign()) is None


def test_temporary_credentials_sign_the_security_token_and_pass() -> None:
    request = sign(token=SESSION_TOKEN)
    headers = request[2]
    assert headers["X-Amz-Security-Token"] == SESSION_TOKEN
    assert "x-amz-security-token" in headers["Authorization"].split("SignedHeaders=")[1]
    assert verifier()(*request) is None


def test_the_authorization_header_names_the_scope_and_the_signed_headers() -> None:
    auth = sign()[2]["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20240131/{REGION}/{SERVICE}/aws4_request, ")
    assert "SignedHeaders=content-length;content-type;host;x-amz-date, " in auth
    assert SECRET_KEY not in auth


@pytest.mark.parametrize(("skew", "accepted"), [
    pytest.param(0, True, id="same-time"),
    pytest.param(299, True, id="4m59s-behind"),
    pytest.param(300, True, id="exactly-5m"),
    pytest.param(301, False, id="5m01s-old"),
    pytest.param(-301, False, id="5m01s-from-the-future"),
    pytest.param(3600, False, id="an-hour-old"),
])
def test_clock_skew_over_five_minutes_is_refused(skew: float, accepted: bool) -> None:
    problem = verifier(skew)(*sign())
    if accepted:
        assert problem is None
    else:
        assert problem is not None
        assert "clock skew" in problem and "20240131T235830Z" in problem and "over 300 s" in problem


@pytest.mark.parametrize(("request_", "change", "named"), [
    pytest.param(sign, without("Authorization"), "missing Authorization header", id="no-authorization"),
    pytest.param(sign, without("X-Amz-Date"), "missing X-Amz-Date header", id="no-date"),
    pytest.param(sign, with_header("Authorization", "Bearer abc"), "must start with AWS4-HMAC-SHA256", id="other-scheme"),
    pytest.param(sign, with_header("Authorization", "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request"),
                 "has no SignedHeaders, Signature", id="incomplete-authorization"),
    pytest.param(sign, with_header("X-Amz-Date", "2024-01-31T23:58:30Z"), "is not in the form", id="bad-date-format"),
    pytest.param(lambda: sign(secret=WRONG_SECRET_KEY), unchanged, "wrong signature", id="wrong-secret"),
    pytest.param(lambda: sign(access_key="AKIDSOMEONEELSE00001"), unchanged, "unknown access key", id="unknown-access-key"),
    pytest.param(lambda: sign(region="eu-west-1"), unchanged, "region 'eu-west-1' should be 'us-east-1'", id="wrong-region"),
    pytest.param(lambda: sign(service="execute-apj"), unchanged, "service 'execute-apj' should be 'execute-api'", id="wrong-service"),
    pytest.param(sign, with_body(BODY.replace(b"19.99", b"99.99")), "wrong signature", id="body-changed-same-length"),
    pytest.param(sign, with_body(BODY + b" "), "wrong signature", id="body-extended"),
    pytest.param(sign, with_header("Content-Type", "text/plain"), "wrong signature", id="signed-header-changed"),
    pytest.param(sign, with_header("X-Amz-Date", "20240131T235831Z"), "wrong signature", id="date-changed"),
    pytest.param(sign, with_path("/v1/refund"), "wrong signature", id="path-changed"),
    pytest.param(sign, without("Content-Type"), "signed header(s) content-type not in the request", id="signed-header-dropped"),
    pytest.param(lambda: sign(token=SESSION_TOKEN), with_header("X-Amz-Security-Token", "another"), "wrong signature",
                 id="token-changed"),
    pytest.param(lambda: sign(extra={"X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()}), unchanged,
                 "x-amz-content-sha256 does not match the body", id="content-hash-header-lies"),
])
def test_a_refusal_names_the_problem(request_: Callable[[], Request], change: Callable[[Request], Request], named: str) -> None:
    problem = verifier()(*change(request_()))
    assert problem is not None and named in problem
    assert SECRET_KEY not in problem and WRONG_SECRET_KEY not in problem


def test_without_a_configured_region_any_signed_region_passes() -> None:
    assert verifier(region=None)(*sign(region="eu-west-1")) is None


def test_a_signed_content_hash_that_matches_the_body_passes() -> None:
    assert verifier()(*sign(extra={"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()})) is None


def test_the_verifiers_repr_keeps_the_secret_out() -> None:
    assert SECRET_KEY not in repr(verifier())
