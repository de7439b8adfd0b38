"""What the intake tests share: tokens for two stores, job bodies, and reading problem answers."""

from __future__ import annotations

import json
import socket
from typing import Any

import requests

from payq.serve.access import digest, new_token
from tests.support.serve import ServeProcess

STORE_A, STORE_B = "store-a", "store-b"
TOKEN_A, TOKEN_B, TOKEN_AB = new_token(), new_token(), new_token()
TOKENS = {digest(TOKEN_A): [STORE_A], digest(TOKEN_B): [STORE_B], digest(TOKEN_AB): [STORE_A, STORE_B]}
REFUND_ID = "5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a"
PROBLEM_JSON = "application/problem+json"


def serve_env(**extra: str) -> dict[str, str]:
    """``payq serve``'s settings for the tests: the two stores' tokens, and little patience with an unreachable Redis."""
    return {"PAYQ_INTAKE_TOKENS": json.dumps(TOKENS), "PAYQ_REDIS_RETRY_SECONDS": "0.3", **extra}


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def capture(trip: str = "t1", amount: Any = "10.00", store: str = STORE_A, currency: str = "USD") -> dict[str, Any]:
    """A capture job's JSON."""
    return {"operation": "capture", "storeId": store, "shoppingTripId": trip, "amount": {"amount": amount, "code": currency}}


def cancel(trip: str = "t1", store: str = STORE_A) -> dict[str, Any]:
    """A cancel job's JSON."""
    return {"operation": "cancel", "storeId": store, "shoppingTripId": trip}


def refund(trip: str = "t1", amount: Any = "1.00", request_id: str = REFUND_ID, store: str = STORE_A, currency: str = "USD") -> dict[str, Any]:
    """A refund job's JSON."""
    return {"operation": "refund", "storeId": store, "shoppingTripId": trip, "amount": {"amount": amount, "code": currency},
            "refundReasonCode": "DAMAGED_ITEM", "refundRequestId": request_id}


def feedback(trip: str = "t1", at: int = 1_700_000_000, store: str = STORE_A) -> dict[str, Any]:
    """A payment-status report job's JSON."""
    usd = {"amount": "3.00", "code": "USD"}
    return {"operation": "feedback", "storeId": store, "shoppingTripId": trip, "totalAmount": usd, "settledAmount": usd,
            "paymentStatusTime": at}


def post(serve: ServeProcess, path: str, body: Any, token: str | None = TOKEN_A, **kwargs: Any) -> requests.Response:
    """POST ``body`` (JSON, or bytes/str sent as they are) with ``token``."""
    headers = {**(bearer(token) if token else {}), "Content-Type": "application/json"}
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return serve.request("POST", path, data=data, headers=headers, **kwargs)


def get(serve: ServeProcess, path: str, token: str | None = TOKEN_A) -> requests.Response:
    """GET ``path`` with ``token``."""
    return serve.request("GET", path, headers=bearer(token) if token else {})


def problem(response: requests.Response, status: int) -> dict[str, Any]:
    """The RFC 9457 body of a refusal with ``status`` (asserting its shape)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:payq:problem:") and body["title"] and body["detail"]
    return body


def errors(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A problem's errors as (index, field, rule) tuples (index None outside a batch)."""
    return [(e.get("index"), e["field"], e["rule"]) for e in body["errors"]]


def raw_exchange(serve: ServeProcess, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` bytes over a fresh connection and read the answer to the end: status, headers (lower-case), body."""
    with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            head, _, rest = received.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(rest) >= length:
                break
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body
