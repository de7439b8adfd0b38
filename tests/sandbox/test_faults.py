"""Fault scripts: parsing and selection as pure functions, then what each fault looks like over real HTTP."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.faults import PASS, Fault, FaultScript, FaultScriptError, parse_fault, parse_script
from tests.support.sandbox import REPO_ROOT, SandboxProcess

CAPTURE = "/v1/capture/charge"
CANCEL = "/v1/cancel/charge"
REFUND = "/v1/refund"
REFUND_ID = "3f1c2a4e-9b7d-4c1e-8a2b-5d6e7f809a1b"


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def body_json(fault: Fault) -> Any:
    return json.loads(fault.body)


# --- shorthands -------------------------------------------------------------------------------

def test_status_shorthand_gets_the_documented_default_body() -> None:
    fault = parse_fault("429")
    assert (fault.kind, fault.status, fault.process) == ("status", 429, False)
    assert body_json(fault) == {"errorMsg": "Too Many Requests"}
    assert body_json(parse_fault("500")) == {"errorMsg": "ServiceException"}


def test_status_shorthand_with_a_header() -> None:
    fault = parse_fault("429 Retry-After: 3")
    assert ("Retry-After", "3") in fault.headers


def test_503_retry_after_shorthand_puts_the_delay_in_the_body() -> None:
    fault = parse_fault("503 retryAfter 2")
    assert fault.status == 503
    assert body_json(fault) == {"errorMsg": "ServiceUnavailableException", "retryAfter": "2"}


def test_html_shorthand_sends_an_html_page() -> None:
    fault = parse_fault("500 html")
    assert fault.body.startswith(b"<html>")
    assert ("Content-Type", "text/html; charset=UTF-8") in fault.headers


def test_other_statuses_get_their_reason_phrase() -> None:
    assert body_json(parse_fault("502")) == {"errorMsg": "Bad Gateway"}
    assert body_json(parse_fault("401")) == {"errorMsg": "Unauthorized"}


def test_a_400_shorthand_carries_the_error_type_header() -> None:
    assert ("x-amzn-ErrorType", "BadRequestException") in parse_fault("400").headers


@pytest.mark.parametrize(
    ("text", "kind", "process"),
    [
        ("200", "pass", True),
        ("pass", "pass", True),
        ("reset", "reset", False),
        ("truncate", "truncate", False),
        ("malformed", "malformed", True),
        ("extra", "extra", True),
        ("hang 30", "hang", False),
    ],
)
def test_kind_shorthands(text: str, kind: str, process: bool) -> None:
    fault = parse_fault(text)
    assert (fault.kind, fault.process) == (kind, process)


def test_hang_seconds_and_its_default() -> None:
    assert parse_fault("hang 0.25").seconds == 0.25
    assert parse_fault("hang").seconds == 30.0


# --- object form ------------------------------------------------------------------------------

def test_object_fault_with_status_headers_and_json_body() -> None:
    fault = parse_fault({"status": 429, "headers": {"Retry-After": "3"}, "body": {"errorMsg": "slow down"}})
    assert fault.status == 429
    assert ("Retry-After", "3") in fault.headers
    assert body_json(fault) == {"errorMsg": "slow down"}


def test_object_fault_with_raw_string_body() -> None:
    fault = parse_fault({"status": 502, "body": "upstream fell over"})
    assert fault.body == b"upstream fell over"
    assert ("Content-Type", "text/plain; charset=UTF-8") in fault.headers


def test_object_kinds_and_the_process_override() -> None:
    assert parse_fault({"kind": "pass"}) == PASS
    assert parse_fault({"kind": "hang", "seconds": 2}).seconds == 2.0
    assert parse_fault({"kind": "malformed", "process": False}).process is False
    assert parse_fault({"status": 500, "process": True}).process is True
    assert parse_fault({"kind": "reset", "process": True}).process is True


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("teapot", "unknown fault"),
        ("700", "status must be an integer from 200 to 599"),
        ("429 Retry After 3", "cannot read"),
        ("hang soon", "hang seconds"),
        ({"status": "x"}, "status must be"),
        ({"kind": "explode"}, "kind must be one of"),
        ({"status": 500, "colour": "red"}, "unknown key(s) colour"),
        ({"kind": "reset", "body": "x"}, "belong to status faults"),
        ({"kind": "pass", "seconds": 1}, "seconds belongs to hang"),
        ({"status": 500, "process": "yes"}, "process must be true or false"),
        ({"status": 500, "headers": ["Retry-After"]}, "headers must be an object"),
        ([500], "a fault is a string or an object"),
    ],
)
def test_bad_faults_are_refused_with_the_reason(value: Any, words: str) -> None:
    with pytest.raises(FaultScriptError, match="fault") as info:
        parse_fault(value)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ([], "a fault script is a JSON object"),
        ({"rule": []}, "unknown key(s) rule"),
        ({"rules": {}}, "rules must be a list"),
        ({"rules": [{"endpoint": "charge", "sequence": ["500"]}]}, "rules[0]: endpoint must be one of"),
        ({"rules": [{"endpoint": "capture"}]}, "rules[0]: the rule does nothing"),
        ({"rules": [{"sequence": ["500"], "fault": "500"}]}, "either a sequence or a probability"),
        ({"rules": [{"sequence": "500"}]}, "rules[0].sequence must be a list"),
        ({"rules": [{"fault": "500", "probability": 1.5}]}, "probability must be a number from 0 to 1"),
        ({"rules": [{"probability": 0.5}]}, "probability needs a fault"),
        ({"rules": [{"sequence": ["500", "nope"]}]}, "rules[0].sequence[1]: unknown fault"),
        ({"rules": [{"sequence": ["500"], "per_trip": "yes"}]}, "per_trip must be true or false"),
        ({"rules": [{"latency_ms": -1}]}, "latency_ms must be a non-negative number"),
        ({"rules": [{"sequence": ["500"], "storeId": 7}]}, "storeId must be a string"),
        ({"rules": [{"sequence": ["500"], "sequense": []}]}, "unknown key(s) sequense"),
    ],
)
def test_bad_scripts_name_the_rule_and_the_problem(script: Any, words: str) -> None:
    with pytest.raises(FaultScriptError) as info:
        parse_script(script)
    assert words in str(info.value)


# --- selection --------------------------------------------------------------------------------

def kinds(script: FaultScript, endpoint: str, n: int, store: str | None = "s", trip: str | None = "t") -> list[str | None]:
    out: list[str | None] = []
    for _ in range(n):
        fault = script.select(endpoint, store, trip).fault
        out.append(None if fault is None else (str(fault.status) if fault.kind == "status" else fault.kind))
    return out


def test_a_sequence_is_consumed_in_order_and_then_stops_applying() -> None:
    script = parse_script({"rules": [{"endpoint": "capture", "sequence": ["500", "reset", "200"]}]})
    assert kinds(script, "capture", 5) == ["500", "reset", "pass", None, None]


def test_a_rule_only_sees_its_endpoint_store_and_trip() -> None:
    script = parse_script({"rules": [{"endpoint": "refund", "storeId": "s1", "shoppingTripId": "t1", "sequence": ["500"]}]})
    assert script.select("capture", "s1", "t1").fault is None
    assert script.select("refund", "s2", "t1").fault is None
    assert script.select("refund", "s1", "t2").fault is None
    assert script.select("refund", "s1", None).fault is None
    assert kinds(script, "refund", 2, "s1", "t1") == ["500", None]


def test_the_star_endpoint_matches_every_operation_and_shares_one_sequence() -> None:
    script = parse_script({"rules": [{"endpoint": "*", "sequence": ["500", "502"]}]})
    assert kinds(script, "feedback", 1) + kinds(script, "cancel", 2) == ["500", "502", None]


def test_per_trip_gives_every_trip_its_own_copy_of_the_sequence() -> None:
    script = parse_script({"rules": [{"endpoint": "capture", "per_trip": True, "sequence": ["500", "200"]}]})
    assert kinds(script, "capture", 1, "s", "a") == ["500"]
    assert kinds(script, "capture", 3, "s", "b") == ["500", "pass", None]
    assert kinds(script, "capture", 2, "s", "a") == ["pass", None]


def test_the_first_rule_that_yields_a_fault_wins() -> None:
    script = parse_script({"rules": [
        {"endpoint": "capture", "sequence": ["500"]},
        {"endpoint": "*", "sequence": ["429", "503"]},
    ]})
    # the first rule wins the first capture; the second rule is not consulted (nor consumed) then
    assert kinds(script, "capture", 3) == ["500", "429", "503"]


def test_probability_with_an_injected_rng_is_deterministic() -> None:
    script = {"rules": [{"endpoint": "capture", "probability": 0.5, "fault": "500"}]}
    expected = ["500" if random.Random(7).random() < 0.5 else None]
    first = kinds(parse_script(script, rng=random.Random(7)), "capture", 1)
    assert first == expected
    many = kinds(parse_script(script, rng=random.Random(7)), "capture", 400)
    assert many == kinds(parse_script(script, rng=random.Random(7)), "capture", 400)
    assert 150 < many.count("500") < 250


def test_probability_seeded_in_the_script_repeats_and_the_extremes_hold() -> None:
    seeded = {"seed": 42, "rules": [{"endpoint": "*", "probability": 0.3, "fault": "503 retryAfter 1"}]}
    assert kinds(parse_script(seeded), "refund", 50) == kinds(parse_script(seeded), "refund", 50)
    never = parse_script({"rules": [{"endpoint": "*", "probability": 0, "fault": "500"}]})
    always = parse_script({"rules": [{"endpoint": "*", "probability": 1, "fault": "500"}]})
    assert kinds(never, "capture", 20) == [None] * 20
    assert kinds(always, "capture", 20) == ["500"] * 20


def test_for_seconds_counts_from_when_the_script_was_set() -> None:
    clock = FakeClock()
    script = parse_script({"rules": [{"endpoint": "*", "fault": "503 retryAfter 1", "for_seconds": 10}]}, clock=clock)
    assert kinds(script, "capture", 1) == ["503"]
    clock.now += 9.9
    assert kinds(script, "capture", 1) == ["503"]
    clock.now += 0.1
    assert kinds(script, "capture", 1) == [None]


def test_latency_adds_up_over_the_rules_that_applied() -> None:
    script = parse_script({"rules": [
        {"endpoint": "*", "latency_ms": 20},
        {"endpoint": "capture", "sequence": ["500"], "latency_ms": 5},
        {"endpoint": "*", "latency_ms": 1000},
    ]})
    first = script.select("capture", "s", "t")
    assert (first.fault is not None and first.fault.status, first.latency_ms) == (500, 25.0)
    # the sequence is spent, so the capture falls through every rule
    assert script.select("capture", "s", "t").latency_ms == 1020.0


def test_an_empty_script_selects_nothing() -> None:
    assert FaultScript([]).select("capture", "s", "t").fault is None


# --- over HTTP --------------------------------------------------------------------------------

def capture_body(trip: str = "trip-1", amount: str = "19.99") -> str:
    return f'{{"storeId":"store-1","shoppingTripId":"{trip}","amount":{{"amount":{amount},"code":"USD"}}}}'


def refund_body(trip: str = "trip-1") -> str:
    return (
        f'{{"storeId":"store-1","shoppingTripId":"{trip}","amount":{{"amount":5.00,"code":"USD"}},'
        f'"refundRequestId":"{REFUND_ID}","refundReasonCode":"OTHER"}}'
    )


def post(sandbox: SandboxProcess, path: str, body: str, timeout: float = 5.0) -> requests.Response:
    return requests.post(sandbox.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=timeout)


def test_a_sequence_over_http_ends_in_success(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    sandbox.set_faults({"rules": [{"endpoint": "capture", "sequence": ["429 Retry-After: 3", "503 retryAfter 2", "200"]}]})
    first, second, third = (post(sandbox, CAPTURE, capture_body()) for _ in range(3))
    assert (first.status_code, first.headers["Retry-After"], first.json()) == (429, "3", {"errorMsg": "Too Many Requests"})
    assert (second.status_code, second.json()["retryAfter"]) == (503, "2")
    assert (third.status_code, third.content) == (200, b"")
    # faults without process=true never reached the ledger: one capture call
    assert sandbox.trip("store-1", "trip-1")["captureCalls"] == 1
    assert [r["status"] for r in sandbox.requests(CAPTURE)] == [429, 503, 200]


def test_a_status_fault_with_process_charges_but_answers_500(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    sandbox.set_faults({"rules": [{"endpoint": "capture", "sequence": [{"status": 500, "process": True}]}]})
    assert post(sandbox, CAPTURE, capture_body()).status_code == 500
    assert sandbox.trip("store-1", "trip-1")["captured"] == {"amount": "19.99", "code": "USD"}
    assert post(sandbox, CAPTURE, capture_body()).status_code == 200  # the retry: acknowledged, not charged again


def test_a_custom_status_body_and_headers_go_out_as_written(sandbox: SandboxProcess) -> None:
    sandbox.set_faults({"rules": [{"sequence": [{"status": 418, "headers": {"X-Why": "tea"}, "body": "short and stout"}]}]})
    response = post(sandbox, CAPTURE, capture_body())
    assert (response.status_code, response.headers["X-Why"], response.text) == (418, "tea", "short and stout")


def test_a_204_fault_goes_out_without_a_body(sandbox: SandboxProcess) -> None:
    sandbox.set_faults({"rules": [{"sequence": [{"status": 204}]}]})
    response = post(sandbox, CAPTURE, capture_body())
    assert (response.status_code, response.content) == (204, b"")


def test_reset_aborts_the_connection_without_an_answer(sandbox: SandboxProcess) -> None:
    sandbox.set_faults({"rules": [{"endpoint": "capture", "sequence": ["reset"]}]})
    with pytest.raises(requests.ConnectionError):
        post(sandbox, CAPTURE, capture_body())
    assert [r["status"] for r in sandbox.requests(CAPTURE)] == [None]


def test_reset_sends_a_tcp_rst(sandbox: SandboxProcess) -> None:
    sandbox.set_faults({"rules": [{"sequence": ["reset"]}]})
    body = capture_body().encode()
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/capture/charge HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        with pytest.raises(ConnectionResetError):
            while sock.recv(4096):  # an orderly close would end this loop with b"" instead
                pass


def test_hang_holds_the_request_and_costs_no_thread(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    sandbox.set_faults({"rules": [{"endpoint": "capture", "sequence": ["hang 5"]}]})
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        post(sandbox, CAPTURE, capture_body(), timeout=0.3)
    assert time.monotonic() - started < 2
    # while that request hangs, the sandbox answers others at once
    assert post(sandbox, CAPTURE, capture_body(), timeout=2).status_code == 200


def test_hang_closes_the_connection_after_its_time(sandbox: SandboxProcess) -> None:
    sandbox.set_faults({"rules": [{"sequence": ["hang 0.2"]}]})
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        post(sandbox, CAPTURE, capture_body(), timeout=5)
    assert 0.2 <= time.monotonic() - started < 3


def test_truncate_promises_more_body_than_it_sends(sandbox: SandboxProcess) -> None:
    sandbox.set_faults({"rules": [{"sequence": ["truncate"]}]})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(sandbox, CAPTURE, capture_body())
    assert [r["status"] for r in sandbox.requests(CAPTURE)] == [200]


def test_a_malformed_refund_is_recorded_and_its_retry_gets_the_same_reconciliation_id(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    assert post(sandbox, CAPTURE, capture_body()).status_code == 200
    sandbox.set_faults({"rules": [{"endpoint": "refund", "sequence": ["malformed"]}]})
    broken = post(sandbox, REFUND, refund_body())
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    retried = post(sandbox, REFUND, refund_body())
    refunds = sandbox.trip("store-1", "trip-1")["refunds"]
    assert len(refunds) == 1
    assert retried.json() == {"reconciliationId": refunds[0]["reconciliationId"]}


def test_extra_adds_unknown_attributes_to_the_normal_answer(sandbox: SandboxProcess) -> None:
    sandbox.register_trip("store-1", "trip-1")
    sandbox.set_faults({"rules": [{"endpoint": "*", "sequence": ["extra", "extra"]}]})
    captured = post(sandbox, CAPTURE, capture_body())
    assert captured.status_code == 200
    assert "futureField" in captured.json()
    refunded = post(sandbox, REFUND, refund_body()).json()
    assert set(refunded) >= {"reconciliationId", "futureField"}


def test_rule_latency_delays_the_answer(sandbox: SandboxProcess) -> None:
    sandbox.set_faults({"rules": [{"endpoint": "capture", "latency_ms": 150}]})
    started = time.monotonic()
    post(sandbox, CAPTURE, capture_body())
    assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize("fault", ["reset", "hang 0.1", "truncate", "500", "malformed"])
def test_a_client_that_gives_up_during_the_latency_does_not_upset_the_sandbox(sandbox: SandboxProcess, fault: str) -> None:
    sandbox.set_faults({"rules": [
        {"endpoint": "capture", "latency_ms": 300, "sequence": [fault]},
        # sent after the capture and slower, so its answer comes after the capture's fault went out
        {"endpoint": "cancel", "latency_ms": 400},
    ]})
    already_written = len(sandbox.output())
    with pytest.raises(requests.Timeout):
        post(sandbox, CAPTURE, capture_body(), timeout=0.05)
    assert post(sandbox, CANCEL, capture_body()).status_code == 400  # still answering: an unknown trip
    assert "Traceback" not in sandbox.output()[already_written:]


def test_a_bad_script_is_refused_with_400_and_the_old_one_stays(sandbox: SandboxProcess) -> None:
    sandbox.set_faults({"rules": [{"sequence": ["502"]}]})
    response = requests.post(sandbox.url + "/admin/faults", data='{"rules": [{"sequence": ["oops"]}]}', timeout=5)
    assert response.status_code == 400
    assert "rules[0].sequence[0]" in response.json()["errorMsg"]
    assert requests.post(sandbox.url + "/admin/faults", data="{", timeout=5).status_code == 400
    assert post(sandbox, CAPTURE, capture_body()).status_code == 502


def test_reset_clears_the_fault_script(sandbox: SandboxProcess) -> None:
    sandbox.set_faults({"rules": [{"endpoint": "*", "fault": "500"}]})
    sandbox.reset()
    assert post(sandbox, CAPTURE, capture_body()).status_code == 400  # an unknown trip, answered honestly


# --- the command line -------------------------------------------------------------------------

def test_a_fault_file_given_at_start_is_in_force(tmp_path: Path) -> None:
    script = tmp_path / "faults.json"
    script.write_text(json.dumps({"rules": [{"endpoint": "capture", "sequence": ["503 retryAfter 7"]}]}))
    with SandboxProcess("--faults", str(script), "--auto-register") as sandbox:
        first = post(sandbox, CAPTURE, capture_body())
        assert (first.status_code, first.json()["retryAfter"]) == (503, "7")
        assert post(sandbox, CAPTURE, capture_body()).status_code == 200
        assert sandbox.stop() == 0  # SIGTERM is a clean exit


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "is not valid JSON"),
        ('{"rules": [{"endpoint": "capture", "sequence": ["4xx"]}]}', "rules[0].sequence[0]: unknown fault '4xx'"),
    ],
)
def test_an_unusable_fault_file_exits_2_naming_the_problem(tmp_path: Path, content: str, words: str) -> None:
    script = tmp_path / "faults.json"
    script.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--port", "0", "--faults", str(script)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "--faults" in result.stderr
    assert words in result.stderr


def test_a_missing_fault_file_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--port", "0", "--faults", str(tmp_path / "absent.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30,
    )
    assert (result.returncode, "cannot read" in result.stderr) == (2, True)
