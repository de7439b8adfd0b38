"""An event's body, built without the models, is byte for byte the body the models give, as tables.

Receivers verify a signature over the exact bytes and may parse them in
order: :func:`tasks.notify.events.body` must give what
:func:`tasks.notify.events.body_of` gives for the same
:class:`~payapi.models.NotificationEvent`, field order, escapes and all. The
events are built as the workers build them; the expected body from the model,
as before.
"""

from __future__ import annotations

import enum
import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from payapi.models import NotificationData, NotificationEvent
from payapi.operations import Operation
from payapi.outcomes import Failure, FailureKind
from tasks.notify import events
from tasks.states import DeadLetterReason

NOW = 1_767_225_600.123456  # 2026-01-01T00:00:00.123456Z
TRIP = {"storeId": "s1", "shoppingTripId": "t1", "amount": {"value": "10.00", "currency": "EUR"}}


class Code(enum.StrEnum):
    A = "a"


def old_iso(epoch: float) -> str:
    """An event's timestamp as the workers wrote it before."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def old_public_result(result: dict[str, Any]) -> dict[str, Any]:
    """A result's settledAt as the workers wrote it before."""
    settled = result.get("settledAt")
    if isinstance(settled, int | float) and not isinstance(settled, bool):
        return {**result, "settledAt": datetime.fromtimestamp(settled, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return result


def model_body(event_id: str, kind: str, data: dict[str, Any], timestamp: str = old_iso(NOW)) -> str:
    """The body as the models write it: what receivers got before."""
    event = NotificationEvent(id=event_id, type=kind, timestamp=timestamp, data=NotificationData(**data))  # type: ignore[arg-type]
    return events.body_of(event)


def succeeded_data(job_id: str, operation: str, result: dict[str, Any], kwargs: dict[str, Any] = TRIP) -> dict[str, Any]:
    return {"jobId": job_id, "operation": operation, "storeId": kwargs.get("storeId"), "shoppingTripId": kwargs.get("shoppingTripId"),
            "state": "succeeded", "result": old_public_result(result), "status": 200}


@pytest.mark.parametrize(("operation", "kwargs", "result"), [
    (Operation.CAPTURE, TRIP, {"reportJobId": "payment_status:s1:t1:1767225600", "settledAt": 1767225600}),
    (Operation.REFUND, TRIP, {"reconciliationId": "rec-1"}),
    (Operation.CANCEL, TRIP, {}),
    (Operation.FEEDBACK, TRIP, {"status": "ok", "reasonCode": None}),
    (Operation.REFUND, {"storeId": "s1"}, {"reconciliationId": "ré-ü-€-💳"}),                     # non-ASCII: escaped, as json.dumps does
    (Operation.REFUND, TRIP, {"amount": Decimal("12.50"), "fee": Decimal("1E+2")}),             # Decimals: the model writes their digits
    (Operation.REFUND, TRIP, {"rate": 0.1, "inf": float("inf")}),                              # floats: the model writes inf as null
    (Operation.REFUND, TRIP, {"code": Code.A, "nested": {"list": [1, True, None, "x"], "tuple": (1, 2)}}),
    (Operation.CAPTURE, {"storeId": "s\"1\\", "shoppingTripId": "t\n1"}, {"settledAt": 1767225600.5}),
    (Operation.REFUND, TRIP, {"quote\"": "line\nbreak\ttab\x00", "": ""}),
])
def test_a_success_s_body_is_the_model_s(operation: Operation, kwargs: dict[str, Any], result: dict[str, Any]) -> None:
    job_id = f"{operation.value}:s1:t1"
    event = events.succeeded(job_id, operation, kwargs, result, NOW)
    assert (event.id, event.job_id) == (f"{job_id}:succeeded", job_id)
    assert event.body == model_body(event.id, events.SUCCEEDED, succeeded_data(job_id, operation.value, result, kwargs))


@pytest.mark.parametrize(("failure", "replays"), [
    (Failure(FailureKind.REFUSED, status=400, error_msg="BadRequestException: no"), 0),
    (Failure(FailureKind.REFUSED, status=422, error_msg="montant refusé: 12,50 €"), 2),
    (Failure(FailureKind.TIMEOUT, error_type="ConnectTimeout"), 1),                          # no status, no message: described
    (Failure(FailureKind.CAPTURE_FAILED, error_type="capture:s1:t1"), 0),
])
def test_a_dead_letter_s_body_is_the_model_s(failure: Failure, replays: int) -> None:
    event = events.dead_lettered("refund:s1:t1:r1", Operation.REFUND, TRIP, DeadLetterReason.PERMANENT, failure, replays, NOW)
    data = {"jobId": "refund:s1:t1:r1", "operation": "refund", "storeId": "s1", "shoppingTripId": "t1", "state": "dead-lettered",
            "reason": DeadLetterReason.PERMANENT.value, "status": failure.status, "errorMsg": failure.error_msg or failure.describe()}
    assert event.id == f"refund:s1:t1:r1:dead:{replays}"
    assert event.body == model_body(event.id, events.DEAD_LETTERED, data)
    assert json.loads(event.body)["data"]["errorMsg"] == data["errorMsg"]


def test_the_test_event_s_body_is_the_model_s() -> None:
    event = events.test_event(NOW)
    data = {"jobId": "test", "operation": "notify", "state": "succeeded", "result": {"test": True}, "status": 200}
    assert (event.id, event.job_id) == ("test:1767225600123", "test")
    assert event.body == model_body(event.id, "test", data)


DATA = {"jobId": "j", "operation": "cancel", "state": "succeeded"}


@pytest.mark.parametrize(("fields", "plain"), [
    ({"storeId": None, "result": {"a": [1, "b", None, True]}, "status": 200}, True),
    ({"result": {"a": Decimal("1.50")}}, False),
    ({"result": {"a": 1.5}}, False),
    ({"result": {"a": (1, 2)}}, False),
    ({"storeId": Code.A}, False),
    ({"status": True}, False),       # the model writes 1
    ({"status": 2.0}, False),        # the model writes 2
])
def test_only_plain_json_values_skip_the_models(fields: dict[str, Any], plain: bool) -> None:
    """Which values :func:`~tasks.notify.events.body` writes itself; the rest go through the models, to the same bytes."""
    data = {**DATA, **fields}
    assert all(events._plain_field(name, value) for name, value in data.items()) is plain
    assert events.body("e", events.SUCCEEDED, "t", data) == model_body("e", events.SUCCEEDED, data, "t")


@pytest.mark.parametrize(("event_id", "fields"), [
    ("", {}),
    ("x" * 513, {}),
    ("e", {"storeId": 5}),
    ("e", {"result": {1: "an int key"}}),
])
def test_what_the_model_refuses_is_still_refused(event_id: str, fields: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        events.body(event_id, events.SUCCEEDED, "t", {**DATA, **fields})


def test_an_id_as_long_as_the_model_takes_is_written_without_it() -> None:
    assert events.body("x" * 512, events.SUCCEEDED, "t", DATA) == model_body("x" * 512, events.SUCCEEDED, DATA, "t")


EPOCHS = [0.0, 1.0, 0.5, 1e-6, 4e-7, 5e-7, 6e-7, 0.9999994, 0.9999995, 0.9999996, 1_767_225_599.9999995, 1_767_225_599.999999,
          1_767_225_600.0000005, 1_767_225_600.1234565, 1_767_225_600.1234575, 1_767_225_600, 2_000_000_000.75, 1_700_000_000.000_001]


@pytest.mark.parametrize("epoch", EPOCHS + [random.Random(seed).uniform(1.6e9, 2.1e9) for seed in range(200)])
def test_a_timestamp_is_written_as_datetime_writes_it(epoch: float) -> None:
    """Rounded to the microsecond half to even, a rounding up to the next second carried into it, as ``datetime.fromtimestamp``."""
    assert events._iso(epoch) == old_iso(epoch)
    assert events.public_result({"settledAt": epoch}) == old_public_result({"settledAt": epoch})
    assert events.public_result({"settledAt": int(epoch)}) == old_public_result({"settledAt": int(epoch)})


@pytest.mark.parametrize("result", [{}, {"settledAt": True}, {"settledAt": "2026-01-01T00:00:00Z"}, {"settledAt": None}, {"x": 1}])
def test_a_result_without_a_numeric_settle_time_is_left_as_it_is(result: dict[str, Any]) -> None:
    assert events.public_result(result) is result
