"""The console's pure rules as tables: its filters, its pages, the CSRF token, the Origin check, its settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.settings import Settings
from payapi.operations import Operation
from payq.serve.console.guard import csrf_token, same_origin
from payq.serve.console.listing import DeadLetterQuery, Page
from tasks.deadletters import DeadLetter
from tasks.states import DeadLetterReason


def entry(job_id: str = "cancel:s1:t1", *, store: str = "s1", trip: str = "t1", reason: str = "permanent",
          operation: str = "cancel") -> DeadLetter:
    """A dead letter with just what the filters look at."""
    return DeadLetter(id=job_id, operation=Operation(operation), task=f"payments.{operation}", kwargs={"storeId": store, "shoppingTripId": trip},
                      reason=DeadLetterReason(reason), error="HTTP 400", attempts=1, dead_at=1.0)


def test_filters_are_parsed_and_each_bad_value_is_named() -> None:
    query = DeadLetterQuery.parse({"reason": "bogus", "operation": "refund", "store": " s1 ", "since": "soon", "older_than": "7d", "q": ""})
    assert (query.reason, query.operation, query.store, query.since, query.older_than, query.q) == (None, Operation.REFUND, "s1", None, "7d", None)
    assert [p.split(":")[0] for p in query.problems] == ["reason", "since"]
    assert query.params() == {"operation": "refund", "store": "s1", "older_than": "7d"}
    assert DeadLetterQuery.parse(query.params()) == query


@pytest.mark.parametrize(("params", "narrows"), [
    ({}, False), ({"since": "2h"}, False), ({"older_than": "1d", "since": "7d"}, False),
    ({"reason": "permanent"}, True), ({"operation": "cancel"}, True), ({"store": "s1"}, True), ({"q": "t1"}, True),
])
def test_only_age_filters_can_be_answered_from_the_index_alone(params: dict[str, str], narrows: bool) -> None:
    assert DeadLetterQuery.parse(params).narrows is narrows


def test_age_bounds_count_back_from_now_and_a_confirmed_replay_all_stops_at_its_confirmation() -> None:
    query = DeadLetterQuery.parse({"since": "2h", "older_than": "15m"})
    assert query.bounds(10_000.0) == (10_000.0 - 7200, 10_000.0 - 900)
    assert DeadLetterQuery().bounds(10_000.0) == (None, None)
    assert DeadLetterQuery().frozen_bounds(10_000.0) == (None, 10_000.0)
    assert query.frozen_bounds(10_000.0) == (10_000.0 - 7200, 10_000.0 - 900)


@pytest.mark.parametrize(("params", "admitted"), [
    ({"q": "t1"}, True), ({"q": "T1"}, True), ({"q": "cancel:s1"}, True), ({"q": "t2"}, False),
    ({"q": "refund:"}, False), ({"reason": "permanent", "store": "s1"}, True), ({"reason": "internal-error"}, False),
    ({"operation": "capture"}, False), ({"store": "s"}, False),
])
def test_search_matches_part_of_the_job_id_or_the_trip_and_other_filters_match_exactly(params: dict[str, str], admitted: bool) -> None:
    assert DeadLetterQuery.parse(params).admits(entry()) is admitted


def test_a_refund_is_found_by_its_trip_although_its_id_does_not_name_it() -> None:
    refund = entry("refund:0b0c5d3e-8a59-4b5a-9f4e-1d2b3c4d5e6f", trip="trip-77", operation="refund")
    assert DeadLetterQuery.parse({"q": "trip-77"}).admits(refund)


@pytest.mark.parametrize(("total", "number", "shown", "first", "last", "pages"), [
    (0, 1, 0, 0, 0, 1), (10, 1, 10, 1, 10, 1), (120, 1, 50, 1, 50, 3), (120, 3, 20, 101, 120, 3), (120, 4, 0, 0, 0, 3),
])
def test_page_positions(total: int, number: int, shown: int, first: int, last: int, pages: int) -> None:
    page = Page([entry()] * shown, total, number)
    assert (page.first, page.last, page.pages) == (first, last, pages)


def test_the_csrf_token_is_per_user_and_changes_with_the_credential() -> None:
    token = csrf_token("ops:pw", "ops")
    assert token == csrf_token("ops:pw", "ops"), "every payq serve behind one proxy agrees"
    assert len(token) == 64 and "pw" not in token
    assert token != csrf_token("ops:pw2", "ops")
    assert token != csrf_token("ops:pw", "ops2")


@pytest.mark.parametrize(("origin", "referer", "allowed"), [
    (None, None, True),                                    # no page named: the token decides
    ("http://console.internal:8088", None, True),
    ("https://CONSOLE.internal:8088", None, True),         # the scheme differs behind a TLS proxy; hosts are case-insensitive
    ("http://evil.example", None, False),
    ("null", None, False),
    (None, "http://console.internal:8088/console/dead-letters", True),
    (None, "http://evil.example/console.internal:8088", False),
    ("http://evil.example", "http://console.internal:8088/console/", False),  # Origin wins over Referer
    ("http://console.internal:9999", None, False),
])
def test_a_post_is_believed_only_from_the_console_s_own_host(origin: str | None, referer: str | None, allowed: bool) -> None:
    assert same_origin(origin, referer, {"console.internal:8088"}) is allowed


@pytest.mark.parametrize("value", ["ops", "ops:", ":pw", ""])
def test_console_credentials_must_be_user_colon_password(value: str) -> None:
    with pytest.raises(ValidationError, match="user:password"):
        Settings(console_basic_auth=value)


def test_the_flower_address_is_a_plain_web_address() -> None:
    assert Settings(flower_url="https://ops.example.com/flower/").flower_url == "https://ops.example.com/flower"
    assert Settings().flower_url is None
    for bad in ("https://admin:secret@ops.example.com/flower", "ftp://ops.example.com", "ops.example.com"):
        with pytest.raises(ValidationError) as raised:
            Settings(flower_url=bad)
        assert "secret" not in str(raised.value.errors(include_input=False))
