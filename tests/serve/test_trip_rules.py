"""A trip's rules over HTTP: a refusal is 409 naming the rule and the field, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tests.serve.helpers import cancel, capture, get, post, problem, refund
from tests.support.jobs import record
from tests.support.serve import ServeProcess

OTHER_REFUND = "0e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a"


@pytest.mark.parametrize(("before", "refused_job", "refused_id", "rule", "field", "words"), [
    ([capture(amount="10.00"), refund(amount="6.00")], refund(amount="4.01", request_id=OTHER_REFUND), f"refund:{OTHER_REFUND}",
     "over-refund", "amount.amount", "captured 10.00 USD, already refunded 6.00, refundable 4.00"),
    ([capture(amount="10.00")], refund(currency="EUR"), "refund:5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a",
     "refund-currency", "amount.code", "must be the currency trip store-a/t1 was captured in, USD"),
    ([cancel()], capture(), "capture:store-a:t1",
     "capture-after-cancel", "shoppingTripId", "has a cancel job (cancel:store-a:t1): a cancelled trip cannot be captured"),
    ([capture()], cancel(), "cancel:store-a:t1",
     "cancel-after-capture", "shoppingTripId", "has a capture job (capture:store-a:t1)"),
], ids=["over-refund", "refund-currency", "capture-after-cancel", "cancel-after-capture"])
def test_a_job_that_breaks_its_trip_rules_is_409_naming_rule_and_field_and_is_not_written(
    serve: ServeProcess, rdb: redis.Redis, before: list[dict[str, Any]], refused_job: dict[str, Any], refused_id: str,
    rule: str, field: str, words: str,
) -> None:
    for job in before:
        assert post(serve, "/v1/jobs", job).status_code == 202
    trip_before = get(serve, "/v1/trips/store-a/t1").json()

    refused = problem(post(serve, "/v1/jobs", refused_job), 409)

    assert refused["type"] == "urn:payq:problem:trip-rule" and rule in refused["detail"]
    [error] = refused["errors"]
    assert (error["field"], error["rule"]) == (field, rule) and words in error["detail"]
    assert record(rdb, refused_id) == {}
    assert get(serve, "/v1/trips/store-a/t1").json() == trip_before


def test_a_refund_that_fits_exactly_is_taken_after_one_that_did_not(serve: ServeProcess) -> None:
    post(serve, "/v1/jobs", capture(amount="10.00"))
    post(serve, "/v1/jobs", refund(amount="6.00"))
    problem(post(serve, "/v1/jobs", refund(amount="4.01", request_id=OTHER_REFUND)), 409)

    answer = post(serve, "/v1/jobs", refund(amount="4.00", request_id=OTHER_REFUND))

    assert answer.status_code == 202
    assert get(serve, "/v1/trips/store-a/t1").json()["refundable"] == "0.00"
