"""Every rule the API documents, broken once over real HTTP: a 400 BadRequestException naming the field."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
import requests

from payapi import wire
from sandbox.server import make_app, state_of
from tests.support.sandbox import SandboxProcess
from tests.support.sandbox_thread import served_in_a_thread

REFUND_ID = "3f1c2a4e-9b7d-4c1e-8a2b-5d6e7f809a1b"
MISSING = object()

VALID: dict[str, dict[str, Any]] = {
    "/v1/capture/charge": {
        "storeId": "store-1", "shoppingTripId": "trip-1", "amount": {"amount": Decimal("19.99"), "code": "USD"},
    },
    "/v1/cancel/charge": {"storeId": "store-1", "shoppingTripId": "trip-1"},
    "/v1/refund": {
        "storeId": "store-1", "shoppingTripId": "trip-1", "amount": {"amount": Decimal("5.00"), "code": "USD"},
        "refundRequestId": REFUND_ID, "refundReasonCode": "DAMAGED_ITEM",
    },
    "/v1/feedback/payment-status": {
        "storeId": "store-1", "shoppingTripId": "trip-1",
        "totalAmount": {"amount": Decimal("19.99"), "code": "USD"},
        "settledAmount": {"amount": Decimal("19.99"), "code": "USD"},
        "paymentStatusTime": 1700000000,
    },
}
ENDPOINTS = list(VALID)
WITH_AMOUNT = ["/v1/capture/charge", "/v1/refund"]


def with_change(path: str, field: str, value: Any) -> str:
    """The valid body for ``path`` with dotted ``field`` set to ``value`` (or removed, for MISSING)."""
    body = copy.deepcopy(VALID[path])
    *parents, last = field.split(".")
    target = body
    for part in parents:
        target = target[part]
    if value is MISSING:
        del target[last]
    else:
        target[last] = value
    return wire.dumps(body)


def post(sandbox: SandboxProcess, path: str, body: str) -> requests.Response:
    return requests.post(sandbox.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=5)


def assert_bad_request(response: requests.Response, field: str) -> str:
    assert response.status_code == 400, response.text
    assert response.headers["x-amzn-ErrorType"] == "BadRequestException"
    message: str = response.json()["errorMsg"]
    assert message.startswith("BadRequestException: ")
    assert f"{field}: " in message, message
    return message


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("storeId", "store 1", "must match"),
        ("storeId", "store/1", "must match"),
        ("storeId", "s" * 256, "at most 255 characters"),
        ("storeId", "", "must not be empty"),
        ("storeId", 42, ""),
        ("shoppingTripId", "trip.1", "must match"),
        ("shoppingTripId", "t" * 256, "at most 255 characters"),
        ("shoppingTripId", "", "must not be empty"),
        ("shoppingTripId", None, ""),
        ("storeId", MISSING, "is required"),
        ("shoppingTripId", MISSING, "is required"),
    ],
)
def test_trip_identity_rules_on_every_endpoint(sandbox: SandboxProcess, path: str, field: str, value: Any, rule: str) -> None:
    message = assert_bad_request(post(sandbox, path, with_change(path, field, value)), field)
    assert rule in message


def test_ids_at_the_length_limit_are_fine(sandbox: SandboxProcess) -> None:
    store, trip = "s" * 255, "t" * 255
    sandbox.register_trip(store, trip)
    body = wire.dumps({"storeId": store, "shoppingTripId": trip})
    assert post(sandbox, "/v1/cancel/charge", body).status_code == 200


@pytest.mark.parametrize("path", WITH_AMOUNT)
@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("amount.code", "usd", "must match ^[A-Z]{3}$"),
        ("amount.code", "US", "must match"),
        ("amount.code", "USDX", "must match"),
        ("amount.amount", Decimal("19.999"), "at most 2 decimal places"),
        ("amount.amount", "Infinity", "must be digits"),
        ("amount.amount", float("nan"), ""),
        ("amount.amount", Decimal("0"), "greater than 0"),
        ("amount.amount", Decimal("-1.00"), "greater than 0"),
        ("amount.amount", True, ""),
        ("amount.amount", MISSING, "is required"),
        ("amount.code", MISSING, "is required"),
        ("amount", MISSING, "is required"),
        ("amount", "19.99 USD", ""),
    ],
)
def test_amount_rules_for_capture_and_refund(sandbox: SandboxProcess, path: str, field: str, value: Any, rule: str) -> None:
    message = assert_bad_request(post(sandbox, path, with_change(path, field, value)), field)
    assert rule in message


def test_nan_goes_out_as_the_bare_json_literal() -> None:
    # the NaN case above really sends NaN, not a string
    assert '"amount":NaN' in with_change("/v1/refund", "amount.amount", float("nan"))


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("refundRequestId", "3F1C2A4E-9B7D-4C1E-8A2B-5D6E7F809A1B", "must match"),
        ("refundRequestId", "3f1c2a4e-9b7d-6c1e-8a2b-5d6e7f809a1b", "must match"),
        ("refundRequestId", "not-a-uuid", "must match"),
        ("refundRequestId", "3f1c2a4e9b7d4c1e8a2b5d6e7f809a1b", "must match"),
        ("refundRequestId", MISSING, "is required"),
        ("refundReasonCode", "BROKEN", "must be one of"),
        ("refundReasonCode", "damaged_item", "must be one of"),
        ("refundReasonCode", MISSING, "is required"),
    ],
)
def test_refund_request_id_and_reason_code(sandbox: SandboxProcess, field: str, value: Any, rule: str) -> None:
    message = assert_bad_request(post(sandbox, "/v1/refund", with_change("/v1/refund", field, value)), field)
    assert rule in message


@pytest.mark.parametrize(
    ("field", "value", "named", "rule"),
    [
        ("totalAmount.amount", Decimal("-0.01"), "totalAmount.amount", "at least 0"),
        ("settledAmount.amount", Decimal("-5"), "settledAmount.amount", "at least 0"),
        ("settledAmount.code", "EUR", "settledAmount.code", "same currency"),
        ("totalAmount.code", "eur", "totalAmount.code", "must match"),
        ("totalAmount.amount", Decimal("1.001"), "totalAmount.amount", "at most 2 decimal places"),
        ("settledAmount.amount", "NaN", "settledAmount.amount", "must be digits"),
        ("paymentStatusTime", -1, "paymentStatusTime", ""),
        ("paymentStatusTime", "yesterday", "paymentStatusTime", ""),
        ("paymentStatusTime", MISSING, "paymentStatusTime", "is required"),
        ("totalAmount", MISSING, "totalAmount", "is required"),
        ("settledAmount", MISSING, "settledAmount", "is required"),
    ],
)
def test_feedback_rules(sandbox: SandboxProcess, field: str, value: Any, named: str, rule: str) -> None:
    path = "/v1/feedback/payment-status"
    message = assert_bad_request(post(sandbox, path, with_change(path, field, value)), named)
    assert rule in message


def test_zero_feedback_amounts_are_allowed(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    path = "/v1/feedback/payment-status"
    body = wire.dumps({**VALID[path], "totalAmount": {"amount": 0, "code": "USD"}, "settledAmount": {"amount": 0, "code": "USD"}})
    assert post(sandbox, path, body).json()["status"] == "Accepted"


def test_every_bad_field_is_named_in_one_message(sandbox: SandboxProcess) -> None:
    body = wire.dumps({"storeId": "a b", "shoppingTripId": "", "amount": {"amount": Decimal("1.234"), "code": "x"}})
    message = assert_bad_request(post(sandbox, "/v1/capture/charge", body), "storeId")
    for field in ("shoppingTripId: ", "amount.amount: ", "amount.code: "):
        assert field in message


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("body", ["{", "", "storeId=store-1", '{"storeId": "store-1",}', "\xff"])
def test_invalid_json_is_a_bad_request(sandbox: SandboxProcess, path: str, body: str) -> None:
    message = assert_bad_request(post(sandbox, path, body), "(body)")
    assert "valid JSON" in message


@pytest.mark.parametrize("body", ["[]", '"capture"', "42", "null"])
def test_json_that_is_not_an_object_is_a_bad_request(sandbox: SandboxProcess, body: str) -> None:
    assert "must be a JSON object" in assert_bad_request(post(sandbox, "/v1/capture/charge", body), "(body)")


def test_unknown_top_level_attributes_are_ignored(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    body = wire.dumps({**VALID["/v1/capture/charge"], "loyaltyTier": "gold", "futureField": {"x": 1}})
    assert post(sandbox, "/v1/capture/charge", body).status_code == 200


def test_unknown_attributes_inside_an_amount_are_refused(sandbox: SandboxProcess) -> None:
    body = with_change("/v1/capture/charge", "amount.cents", 1999)
    assert "is not a known field" in assert_bad_request(post(sandbox, "/v1/capture/charge", body), "amount.cents")


def test_validation_comes_before_the_trip_lookup(sandbox: SandboxProcess) -> None:
    # an unregistered trip with a bad body: the body is what is wrong first
    response = post(sandbox, "/v1/capture/charge", with_change("/v1/capture/charge", "amount.code", "usd"))
    assert_bad_request(response, "amount.code")


# --- the request verifier hook (SigV4 will plug in here) --------------------------------------

def test_a_verifier_refusal_is_a_403_before_anything_else() -> None:
    seen: list[tuple[str, str, bytes]] = []

    def verifier(method: str, path: str, headers: Mapping[str, str], body: bytes) -> str | None:
        seen.append((method, path, body))
        return None if headers.get("Authorization") == "AWS4-HMAC-SHA256 ok" else "signature missing or wrong"

    app = make_app(verifier=verifier)
    body = with_change("/v1/cancel/charge", "storeId", "store-1")
    with served_in_a_thread(app) as url:
        denied = requests.post(url + "/v1/cancel/charge", data=body, timeout=5)
        allowed = requests.post(url + "/v1/cancel/charge", data=body, headers={"Authorization": "AWS4-HMAC-SHA256 ok"}, timeout=5)
    assert (denied.status_code, denied.json()) == (403, {"errorMsg": "signature missing or wrong"})
    assert allowed.headers["x-amzn-ErrorType"] == "UnknownShoppingTrip"  # past the verifier, on to the ledger
    assert seen == [("POST", "/v1/cancel/charge", body.encode())] * 2
    assert [e.status for e in state_of(app).log.entries()] == [403, 400]
