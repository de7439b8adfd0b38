"""``PaymentClient`` against the sandbox over real HTTP: every outcome the sandbox can produce."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from config.settings import Settings
from payapi.client import PaymentClient
from payapi.models import Amount, CancelRequest, CaptureRequest, FeedbackRequest, FeedbackResponse, RefundRequest, RefundResponse
from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind, Permanent, Rejected, RetryAfter, Success, Transient
from tests.support.ports import free_port
from tests.support.sandbox import SandboxProcess

STORE, TRIP = "store-1", "trip-1"
READ_TIMEOUT = 0.5
REFUND_ID = "3f1c2a4e-9b7d-4c1e-8a2b-5d6e7f809a1b"


@pytest.fixture(scope="module")
def sandbox_process() -> Iterator[SandboxProcess]:
    with SandboxProcess() as process:
        yield process


@pytest.fixture
def sandbox(sandbox_process: SandboxProcess) -> SandboxProcess:
    """A clean sandbox that knows STORE/TRIP."""
    sandbox_process.reset()
    sandbox_process.register_trip(STORE, TRIP)
    return sandbox_process


@pytest.fixture(scope="module")
def client(sandbox_process: SandboxProcess) -> PaymentClient:
    return PaymentClient(Settings(api_base_url=sandbox_process.url, http_read_timeout=READ_TIMEOUT, http_connect_timeout=1.0))


def capture_request(amount: str = "19.99", trip: str = TRIP) -> CaptureRequest:
    return CaptureRequest(storeId=STORE, shoppingTripId=trip, amount=Amount(amount=Decimal(amount), code="USD"))


def refund_request(amount: str = "5.00") -> RefundRequest:
    return RefundRequest(
        storeId=STORE, shoppingTripId=TRIP, amount=Amount(amount=Decimal(amount), code="USD"),
        refundRequestId=REFUND_ID, refundReasonCode="DAMAGED_ITEM",
    )


def feedback_request(total: str = "19.99", settled: str = "19.99") -> FeedbackRequest:
    return FeedbackRequest(
        storeId=STORE, shoppingTripId=TRIP,
        totalAmount=Amount(amount=Decimal(total), code="USD"), settledAmount=Amount(amount=Decimal(settled), code="USD"),
        paymentStatusTime=1700000000,
    )


def fail_next(sandbox: SandboxProcess, endpoint: str, *faults: object) -> None:
    sandbox.set_faults({"rules": [{"endpoint": endpoint, "sequence": list(faults)}]})


# --- success ----------------------------------------------------------------------------------

def test_capture_succeeds_and_sends_the_amount_as_an_exact_number(sandbox: SandboxProcess, client: PaymentClient) -> None:
    assert client.call(Operation.CAPTURE, capture_request("19.99")) == Success()
    [logged] = sandbox.requests("/v1/capture/charge")
    assert logged["body"] == '{"storeId":"store-1","shoppingTripId":"trip-1","amount":{"amount":19.99,"code":"USD"}}'
    assert logged["headers"]["Content-Type"] == "application/json"
    assert sandbox.trip(STORE, TRIP)["captured"] == {"amount": "19.99", "code": "USD"}


def test_whole_amounts_go_out_without_an_exponent(sandbox: SandboxProcess, client: PaymentClient) -> None:
    assert client.call(Operation.CAPTURE, capture_request("10")) == Success()
    assert '"amount":10,' in sandbox.requests("/v1/capture/charge")[0]["body"]


def test_cancel_succeeds(sandbox: SandboxProcess, client: PaymentClient) -> None:
    assert client.call(Operation.CANCEL, CancelRequest(storeId=STORE, shoppingTripId=TRIP)) == Success()
    assert sandbox.trip(STORE, TRIP)["cancelled"] is True


def test_refund_succeeds_with_the_reconciliation_id(sandbox: SandboxProcess, client: PaymentClient) -> None:
    client.call(Operation.CAPTURE, capture_request())
    outcome = client.call(Operation.REFUND, refund_request("5.00"))
    assert isinstance(outcome, Success) and isinstance(outcome.body, RefundResponse)
    assert outcome.body.reconciliationId == sandbox.trip(STORE, TRIP)["refunds"][0]["reconciliationId"]
    assert '"amount":{"amount":5.00,"code":"USD"}' in sandbox.requests("/v1/refund")[0]["body"]


def test_feedback_accepted_succeeds_and_rejected_is_a_rejection(sandbox: SandboxProcess, client: PaymentClient) -> None:
    accepted = client.call(Operation.FEEDBACK, feedback_request("19.99", "19.99"))
    rejected = client.call(Operation.FEEDBACK, feedback_request("10.00", "12.00"))
    assert isinstance(accepted, Success) and isinstance(accepted.body, FeedbackResponse)
    assert (accepted.body.status, accepted.body.reasonCode) == ("Accepted", "OK")
    assert rejected == Rejected(Failure(FailureKind.REJECTED, 200, "SettledExceedsTotal"))


@pytest.mark.parametrize("operation", ["capture", "refund", "feedback"])
def test_extra_attributes_are_still_success(sandbox: SandboxProcess, client: PaymentClient, operation: str) -> None:
    if operation == "refund":
        client.call(Operation.CAPTURE, capture_request())
    fail_next(sandbox, operation, "extra")
    call = {
        "capture": lambda: client.call(Operation.CAPTURE, capture_request()),
        "refund": lambda: client.call(Operation.REFUND, refund_request()),
        "feedback": lambda: client.call(Operation.FEEDBACK, feedback_request()),
    }[operation]
    assert isinstance(call(), Success)
    assert [r["status"] for r in sandbox.requests()][-1] == 200


# --- retry after ------------------------------------------------------------------------------

def test_429_with_retry_after_header_is_retry_after(sandbox: SandboxProcess, client: PaymentClient) -> None:
    fail_next(sandbox, "capture", "429 Retry-After: 3")
    outcome = client.call(Operation.CAPTURE, capture_request())
    assert isinstance(outcome, RetryAfter)
    assert (outcome.delay, outcome.failure.status, outcome.throttled) == (3.0, 429, True)
    assert sandbox.trip(STORE, TRIP)["captureCalls"] == 0


def test_429_as_the_documents_send_it_waits_600_seconds(sandbox: SandboxProcess, client: PaymentClient) -> None:
    fail_next(sandbox, "refund", "429 Retry-After: 600")
    outcome = client.call(Operation.REFUND, refund_request())
    assert isinstance(outcome, RetryAfter) and outcome.delay == 600.0


def test_503_with_retry_after_in_the_body_is_retry_after(sandbox: SandboxProcess, client: PaymentClient) -> None:
    fail_next(sandbox, "cancel", "503 retryAfter 2")
    outcome = client.call(Operation.CANCEL, CancelRequest(storeId=STORE, shoppingTripId=TRIP))
    assert isinstance(outcome, RetryAfter)
    assert (outcome.delay, outcome.failure.status, outcome.throttled) == (2.0, 503, False)


def test_429_without_a_delay_is_transient(sandbox: SandboxProcess, client: PaymentClient) -> None:
    fail_next(sandbox, "capture", "429")
    outcome = client.call(Operation.CAPTURE, capture_request())
    assert isinstance(outcome, Transient) and outcome.failure.status == 429 and outcome.throttled


# --- transient --------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["500", "502", "500 html", "503"])
def test_server_errors_are_transient(sandbox: SandboxProcess, client: PaymentClient, fault: str) -> None:
    fail_next(sandbox, "capture", fault)
    outcome = client.call(Operation.CAPTURE, capture_request())
    assert isinstance(outcome, Transient)
    assert outcome.failure.status == int(fault.split()[0])


@pytest.mark.parametrize("fault", ["reset", "truncate"])
def test_a_broken_connection_is_transient(sandbox: SandboxProcess, client: PaymentClient, fault: str) -> None:
    fail_next(sandbox, "capture", fault)
    outcome = client.call(Operation.CAPTURE, capture_request())
    assert isinstance(outcome, Transient) and outcome.failure.status is None
    assert len(sandbox.requests("/v1/capture/charge")) == 1  # the client itself never retried
    assert client.call(Operation.CAPTURE, capture_request()) == Success()  # and the pool recovers


def test_a_hang_beyond_the_read_timeout_is_transient(sandbox: SandboxProcess, client: PaymentClient) -> None:
    fail_next(sandbox, "capture", "hang 2")
    started = time.monotonic()
    outcome = client.call(Operation.CAPTURE, capture_request())
    elapsed = time.monotonic() - started
    assert isinstance(outcome, Transient) and outcome.failure.kind is FailureKind.TIMEOUT
    assert READ_TIMEOUT <= elapsed < 1.5


def test_a_malformed_refund_body_is_transient_and_the_retry_gets_the_same_id(sandbox: SandboxProcess, client: PaymentClient) -> None:
    client.call(Operation.CAPTURE, capture_request())
    fail_next(sandbox, "refund", "malformed")
    first = client.call(Operation.REFUND, refund_request())
    assert isinstance(first, Transient) and first.failure.status == 200
    retried = client.call(Operation.REFUND, refund_request())
    refunds = sandbox.trip(STORE, TRIP)["refunds"]
    assert len(refunds) == 1
    assert isinstance(retried, Success) and isinstance(retried.body, RefundResponse)
    assert retried.body.reconciliationId == refunds[0]["reconciliationId"]


def test_a_lost_capture_answer_then_a_retry_charges_once(sandbox: SandboxProcess, client: PaymentClient) -> None:
    fail_next(sandbox, "capture", {"status": 500, "process": True})
    assert isinstance(client.call(Operation.CAPTURE, capture_request()), Transient)
    assert client.call(Operation.CAPTURE, capture_request()) == Success()
    entry = sandbox.trip(STORE, TRIP)
    assert (entry["captured"], entry["captureCalls"]) == ({"amount": "19.99", "code": "USD"}, 2)


def test_connection_refused_is_transient() -> None:
    closed = PaymentClient(Settings(api_base_url=f"http://127.0.0.1:{free_port()}", http_connect_timeout=1.0))
    outcome = closed.call(Operation.CAPTURE, capture_request())
    assert isinstance(outcome, Transient) and outcome.failure.kind is FailureKind.CONNECTION


# --- permanent --------------------------------------------------------------------------------

def test_an_unknown_trip_is_permanent(sandbox: SandboxProcess, client: PaymentClient) -> None:
    outcome = client.call(Operation.CAPTURE, capture_request(trip="not-registered"))
    assert isinstance(outcome, Permanent)
    assert (outcome.failure.status, outcome.failure.error_type) == (400, "UnknownShoppingTrip")
    assert outcome.failure.error_msg is not None and outcome.failure.error_msg.startswith("UnknownShoppingTrip: ")


def test_a_bad_request_is_permanent(sandbox: SandboxProcess, client: PaymentClient) -> None:
    client.call(Operation.CAPTURE, capture_request())
    outcome = client.call(Operation.CANCEL, CancelRequest(storeId=STORE, shoppingTripId=TRIP))
    assert isinstance(outcome, Permanent)
    assert (outcome.failure.status, outcome.failure.error_type) == (400, "BadRequestException")
    assert "a completed charge is refunded, not cancelled" in (outcome.failure.error_msg or "")


def test_a_refund_after_the_window_is_permanent(sandbox: SandboxProcess, client: PaymentClient) -> None:
    sandbox.register_trip(STORE, TRIP, trip_time=time.time() - 8 * 24 * 3600)
    client.call(Operation.CAPTURE, capture_request())
    outcome = client.call(Operation.REFUND, refund_request())
    assert isinstance(outcome, Permanent) and "refund window of 7 days has passed" in (outcome.failure.error_msg or "")


@pytest.mark.parametrize("status", [401, 403, 404])
def test_other_4xx_are_permanent(sandbox: SandboxProcess, client: PaymentClient, status: int) -> None:
    fail_next(sandbox, "feedback", str(status))
    outcome = client.call(Operation.FEEDBACK, feedback_request())
    assert isinstance(outcome, Permanent) and outcome.failure.status == status


def test_a_redirect_is_not_followed(sandbox: SandboxProcess, client: PaymentClient) -> None:
    fail_next(sandbox, "capture", {"status": 307, "headers": {"Location": sandbox.url + "/v1/capture/charge"}})
    outcome = client.call(Operation.CAPTURE, capture_request())
    assert isinstance(outcome, Permanent) and outcome.failure.status == 307
    assert len(sandbox.requests("/v1/capture/charge")) == 1


# --- could not be sent ------------------------------------------------------------------------

@pytest.mark.parametrize("base", ["http://", "api.example/v1", "ftp://api.example", "http://api.example:port"])
def test_a_malformed_base_url_makes_every_call_permanent_without_raising(base: str) -> None:
    outcome = PaymentClient(Settings(api_base_url=base)).call(Operation.CAPTURE, capture_request())
    assert isinstance(outcome, Permanent)
    assert (outcome.failure.kind, outcome.failure.status) == (FailureKind.UNSENDABLE, None)
    assert "PAYQ_API_BASE_URL" in outcome.failure.describe()


def test_a_base_url_s_path_prefixes_every_operation_s() -> None:
    prepared = PaymentClient(Settings(api_base_url="https://api.example/prod/")).prepare(Operation.REFUND, refund_request())
    assert (prepared.method, prepared.url, prepared.path) == ("POST", "https://api.example/prod/v1/refund", "/prod/v1/refund")
    assert prepared.headers == {"Content-Type": "application/json", "Content-Length": str(len(prepared.body)), "User-Agent": "payq"}
    assert prepared.body.startswith(b'{"storeId":"store-1",')
