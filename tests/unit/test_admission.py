"""A bare Celery message's fields as the worker enqueues them (tasks/jobs/admission.py): a table."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from payapi.operations import Operation
from tasks.jobs.admission import Admitted, bare_fields
from tasks.producer import prepare

CELERY_ID = "3f2b8c1e-9d4a-4b6e-8f0a-1c2d3e4f5a6b"  # what send_task makes: a uuid4
REFUND = {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "1.00", "code": "USD"}, "refundReasonCode": "DAMAGED_ITEM"}
OWN_KEY = "0b9f6a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    ("operation", "fields", "message_id", "key"),
    [
        pytest.param(Operation.REFUND, REFUND, CELERY_ID, CELERY_ID, id="refund-without-key-takes-the-message-id"),
        pytest.param(Operation.REFUND, REFUND, CELERY_ID.upper(), CELERY_ID, id="an-upper-case-message-id-as-the-field-writes-it"),
        pytest.param(Operation.REFUND, REFUND | {"refundRequestId": None}, CELERY_ID, CELERY_ID, id="a-null-key-is-a-missing-one"),
        pytest.param(Operation.REFUND, REFUND | {"refundRequestId": OWN_KEY}, CELERY_ID, OWN_KEY, id="the-sender-s-own-key-is-kept"),
        pytest.param(Operation.REFUND, REFUND, "order-42-refund", str(uuid.uuid5(uuid.UUID("6f1d3c2e-8a4b-5c7d-9e0f-1a2b3c4d5e6f"),
                                                                                    "order-42-refund")),
                     id="a-message-id-that-is-no-uuid-gives-one-derived-from-it"),
    ],
)
def test_a_bare_refund_s_key_is_fixed_by_its_message(operation: Operation, fields: dict[str, Any], message_id: str, key: str) -> None:
    filled = bare_fields(operation, fields, message_id)
    assert filled["refundRequestId"] == key
    assert prepare(operation.value, filled).job_id == f"refund:{key}", "a key the field's rule takes"


def test_the_same_message_delivered_twice_is_the_same_refund() -> None:
    assert prepare("refund", bare_fields(Operation.REFUND, REFUND, CELERY_ID)).job_id == \
        prepare("refund", bare_fields(Operation.REFUND, REFUND, CELERY_ID)).job_id


@pytest.mark.parametrize("operation", [Operation.CAPTURE, Operation.CANCEL, Operation.FEEDBACK])
def test_other_operations_keep_the_sender_s_fields(operation: Operation) -> None:
    fields = {"storeId": "s1", "shoppingTripId": "t1"}
    assert bare_fields(operation, fields, CELERY_ID) == fields


def test_an_admitted_message_s_result_names_the_job_it_became() -> None:
    assert Admitted("capture:s1:t1", created=False).result == {"enqueuedAs": "capture:s1:t1", "created": False}
