"""The rate limit over real HTTP: bursts and steady pressure against a sandbox process, and what the request log shows."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from payapi.operations import Operation
from sandbox.ratelimit import RateLimit, most_in_one_second
from sandbox.server import make_app, state_of
from tests.support.sandbox import SandboxProcess
from tests.support.sandbox_thread import served_in_a_thread

CAPTURE = "/v1/capture/charge"
CANCEL = "/v1/cancel/charge"
FEEDBACK = "/v1/feedback/payment-status"
R = 10


def capture_body(trip: str = "trip-1") -> str:
    return f'{{"storeId":"store-1","shoppingTripId":"{trip}","amount":{{"amount":19.99,"code":"USD"}}}}'


def post(url: str, path: str, body: str, session: Any = requests) -> requests.Response:
    response: requests.Response = session.post(url + path, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    return response


def first_second(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries that arrived less than a second after the first one."""
    return [e for e in log if e["time"] - log[0]["time"] < 1.0]


def assert_refused_by_the_limit(response: requests.Response, retry_after: str) -> None:
    assert response.status_code == 429
    assert response.headers["Retry-After"] == retry_after
    assert response.json() == {"errorMsg": "Too Many Requests"}


def test_a_burst_of_3r_gets_exactly_r_answers_and_the_rest_429_with_retry_after(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    sandbox.set_faults({"rate_limits": {"capture": {"per_second": R, "retry_after": 2}}})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: post(sandbox.url, CAPTURE, capture_body()), range(3 * R)))

    log = sandbox.requests(CAPTURE)
    assert len(log) == 3 * R
    in_first = first_second(log)
    assert len(in_first) > R  # else the burst proved nothing; 30 local calls take milliseconds
    # the log is in the order the limiter saw the calls: the first R answered, the rest refused
    assert [(e["status"], e["rateLimited"]) for e in in_first] == [(200, False)] * R + [(429, True)] * (len(in_first) - R)
    assert [r.status_code for r in responses].count(200) == sum(1 for e in log if not e["rateLimited"])
    for response in responses:
        if response.status_code != 200:
            assert_refused_by_the_limit(response, "2")
    assert most_in_one_second(e["time"] for e in log if not e["rateLimited"]) <= R
    # refused calls never reached the ledger; the others did (the first charged, the rest acknowledged)
    assert sandbox.trip("store-1", "trip-1")["captureCalls"] == sum(1 for e in log if not e["rateLimited"])
    # other endpoints have windows of their own, here none at all
    assert post(sandbox.url, CANCEL, capture_body("unknown")).status_code == 400


def test_under_steady_pressure_no_one_second_window_holds_more_than_r_accepted_calls(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    sandbox.set_faults({"rate_limits": {"capture": R}})
    ends = time.monotonic() + 2.5
    with requests.Session() as session:
        session.trust_env = False
        while time.monotonic() < ends:
            post(sandbox.url, CAPTURE, capture_body(), session)
            time.sleep(0.005)  # ~150 calls a second against a limit of 10, without pinning a shared core

    log = sandbox.requests(CAPTURE)
    accepted = [e for e in log if not e["rateLimited"]]
    assert {e["status"] for e in accepted} == {200}
    assert {e["status"] for e in log if e["rateLimited"]} == {429}
    assert most_in_one_second(e["time"] for e in accepted) == R
    assert len(accepted) >= 2 * R  # the window slid: new calls were answered after the first second
    assert len(accepted) < len(log)


def test_a_refused_call_consumes_no_fault_and_waits_no_latency(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    sandbox.set_faults({
        "rules": [{"endpoint": "capture", "sequence": ["500", "503 retryAfter 4"], "latency_ms": 500}],
        "rate_limits": {"capture": {"per_second": 1, "retry_after": 3}},
    })
    assert post(sandbox.url, CAPTURE, capture_body()).status_code == 500  # let through: the script's first fault
    started = time.monotonic()
    assert_refused_by_the_limit(post(sandbox.url, CAPTURE, capture_body()), "3")
    assert time.monotonic() - started < 0.5  # answered at once, not after the latency
    time.sleep(max(0.0, sandbox.requests(CAPTURE)[0]["time"] + 1.0 - time.time()) + 0.05)
    assert post(sandbox.url, CAPTURE, capture_body()).status_code == 503  # the fault the refused call did not take
    assert [(e["status"], e["rateLimited"]) for e in sandbox.requests(CAPTURE)] == [(500, False), (429, True), (503, False)]


def test_admin_shows_the_limits_and_reset_removes_a_scripts_limits(sandbox: SandboxProcess) -> None:
    assert sandbox.rate_limits() == {"rate_limits": {}, "configured": {}}
    answer = requests.post(sandbox.url + "/admin/faults", data=json.dumps({"rate_limits": {"feedback": {"per_second": 3}}}), timeout=5)
    assert answer.json() == {"rules": 0, "rate_limits": {"feedback": {"per_second": 3, "retry_after": 1}}}
    assert sandbox.rate_limits()["rate_limits"] == {"feedback": {"per_second": 3, "retry_after": 1}}
    refused = requests.post(sandbox.url + "/admin/faults", data='{"rate_limits": {"feedback": {"per_second": 0}}}', timeout=5)
    assert refused.status_code == 400
    assert "rate_limits.feedback: per_second must be a whole number" in refused.json()["errorMsg"]
    assert sandbox.rate_limits()["rate_limits"] == {"feedback": {"per_second": 3, "retry_after": 1}}  # the old one stays
    sandbox.reset()
    assert sandbox.rate_limits() == {"rate_limits": {}, "configured": {}}


def test_a_call_refused_by_the_signature_check_is_not_counted() -> None:
    def verifier(method: str, path: str, headers: Mapping[str, str], body: bytes) -> str | None:
        return None if headers.get("Authorization") == "ok" else "signature missing or wrong"

    app = make_app(verifier=verifier, auto_register=True, rate_limits={Operation.CAPTURE: RateLimit(1)})
    with served_in_a_thread(app) as url:
        unsigned = [post(url, CAPTURE, capture_body()).status_code for _ in range(3)]
        with requests.Session() as session:
            session.headers["Authorization"] = "ok"
            signed = [post(url, CAPTURE, capture_body(), session) for _ in range(2)]
    assert unsigned == [403] * 3
    assert signed[0].status_code == 200  # the 403s left the window empty
    assert_refused_by_the_limit(signed[1], "1")
    assert [(e.status, e.rate_limited) for e in state_of(app).log.entries()] == [(403, False)] * 3 + [(200, False), (429, True)]


def test_command_line_limits_are_the_configuration_a_fault_file_overrides_until_reset(tmp_path: Path) -> None:
    script = tmp_path / "faults.json"
    script.write_text(json.dumps({"rules": [], "rate_limits": {"feedback": {"per_second": 2}}}))
    with SandboxProcess("--auto-register", "--rate-limit", "capture=3:2", "--faults", str(script)) as sandbox:
        assert sandbox.rate_limits() == {
            "rate_limits": {"feedback": {"per_second": 2, "retry_after": 1}},
            "configured": {"capture": {"per_second": 3, "retry_after": 2}},
        }
        sandbox.reset()
        assert sandbox.rate_limits()["rate_limits"] == {"capture": {"per_second": 3, "retry_after": 2}}
        with requests.Session() as session:
            session.trust_env = False
            responses = [post(sandbox.url, CAPTURE, capture_body(f"trip-{i}"), session) for i in range(6)]
        in_first = first_second(sandbox.requests(CAPTURE))
        assert len(in_first) > 3
        assert [e["status"] for e in in_first] == [200] * 3 + [429] * (len(in_first) - 3)
        assert_refused_by_the_limit(responses[len(in_first) - 1], "2")
        assert "sandbox rate limits: capture 3/s (Retry-After: 2)" in sandbox.output()
        assert "sandbox rate limits from --faults until POST /admin/reset: feedback 2/s (Retry-After: 1)" in sandbox.output()
        assert sandbox.stop() == 0
