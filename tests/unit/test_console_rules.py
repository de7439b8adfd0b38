"""The console's pure rules as tables: its filters and orders, its pages, the live jobs' filters, the CSRF token, the Origin check, its settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from config.settings import Settings
from payapi.operations import Operation
from payq.serve.console.guard import same_origin
from payq.serve.console.listing import DeadLetterQuery, Page
from payq.serve.console.live import JobQuery, LiveState, waits_for
from payq.serve.console.throughput import per_second, tenths
from payq.serve.console.users import Role, User, accepts, csrf_token
from payq.stack.demo import _kept_banner
from payq.views import idempotency_key, subject_of, trip_view
from tasks.jobs.deferral import Deferral
from tasks.redis import keys
from tasks.states import DeadLetterReason, DeferCause, JobState
from tasks.store.deadletters import DeadLetter


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


def test_the_csrf_token_is_per_user_per_day_and_changes_with_the_secret() -> None:
    ops = User("ops", Role.OPERATOR, "$2b$04$" + "a" * 53, hashed=True)
    token = csrf_token(ops, 20_000)
    assert token == csrf_token(User("ops", Role.OPERATOR, "$2b$04$" + "a" * 53, hashed=True), 20_000), "every payq serve behind one proxy agrees"
    assert len(token) == 64
    assert token != csrf_token(User("ops", Role.OPERATOR, "$2b$04$" + "b" * 53, hashed=True), 20_000), "a new password voids it"
    assert token != csrf_token(User("ana", Role.OPERATOR, "$2b$04$" + "a" * 53, hashed=True), 20_000), "bound to the user"
    assert token != csrf_token(ops, 20_001), "a new one each day"


@pytest.mark.parametrize(("made_on", "sent_on", "taken"), [
    (20_000, 20_000 * 86400 + 5, True), (19_999, 20_000 * 86400 + 5, True), (19_998, 20_000 * 86400 + 5, False), (20_001, 20_000 * 86400, False),
])
def test_a_token_is_taken_the_day_it_was_made_and_the_day_after(made_on: int, sent_on: float, taken: bool) -> None:
    ops = User("ops", Role.OPERATOR, "pw", hashed=False)
    assert accepts(ops, csrf_token(ops, made_on), sent_on) is taken


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


# --- the dead-letter list's order, and what a notification's entry is about ---------------------------

NOTIFICATION = {"id": "evt-1", "type": "job.dead_lettered", "timestamp": "2026-12-01T10:00:00Z",
                "data": {"jobId": "capture:s9:t9", "operation": "capture", "storeId": "s9", "shoppingTripId": "t9", "state": "dead-lettered"}}


@pytest.mark.parametrize(("order", "oldest_first", "problem"), [(None, False, None), ("newest", False, None), ("oldest", True, None),
                                                                 ("sideways", False, "order: must be one of newest, oldest")])
def test_the_list_runs_newest_first_unless_asked_for_oldest_first(order: str | None, oldest_first: bool, problem: str | None) -> None:
    query = DeadLetterQuery.parse({"order": order} if order else {})
    assert query.oldest_first is oldest_first
    assert list(query.problems) == ([problem] if problem else [])
    assert ("order" in query.params()) is oldest_first, "newest first is the default, never spelled out in links"


@pytest.mark.parametrize(("kwargs", "store", "trip", "described"), [
    ({"storeId": "s1", "shoppingTripId": "t1"}, "s1", "t1", "store s1, trip t1"),
    (NOTIFICATION, "s9", "t9", "job.dead_lettered of capture:s9:t9 (store s9, trip t9)"),
    ({"id": "evt-2", "type": "test", "data": {"jobId": "", "operation": "test", "state": "succeeded"}}, "", "", "test of -"),
    ({}, "", "", "no store or trip"),
])
def test_a_job_is_about_its_store_and_trip_and_a_notification_about_the_job_it_tells_of(
    kwargs: dict[str, object], store: str, trip: str, described: str,
) -> None:
    about = subject_of(kwargs)
    assert (about.store, about.trip, about.describe()) == (store, trip, described)


def test_a_notification_s_dead_letter_is_found_by_the_store_and_trip_of_the_job_it_tells_of() -> None:
    notification = DeadLetter(id="notify:evt-1", operation=Operation.NOTIFY, task="payments.notify", kwargs=NOTIFICATION,
                              reason=DeadLetterReason.NOTIFY_FAILED, error="HTTP 500", attempts=8, dead_at=1.0)
    assert DeadLetterQuery.parse({"store": "s9"}).admits(notification)
    assert DeadLetterQuery.parse({"q": "t9"}).admits(notification)
    assert not DeadLetterQuery.parse({"store": "s1"}).admits(notification)


# --- the Jobs page ------------------------------------------------------------------------------------

def test_the_live_states_are_job_states_spelled_the_same() -> None:
    assert {s.value for s in LiveState} <= {s.value for s in JobState}
    assert LiveState.QUEUED.index_key == LiveState.RUNNING.index_key == keys.ACTIVE
    assert (LiveState.DEFERRED.index_key, LiveState.WAITING.index_key) == (keys.DEFERRED, keys.WAITING)


def test_jobs_filters_are_parsed_and_each_bad_value_is_named() -> None:
    query = JobQuery.parse({"state": "asleep", "operation": "teleport", "store": " s1 ", "cursor": "-3"})
    assert (query.state, query.operation, query.store, query.cursor) == (LiveState.QUEUED, None, "s1", 0)
    assert [p.split(":")[0] for p in query.problems] == ["state", "operation"]
    deferred = JobQuery.parse({"state": "deferred", "operation": "refund", "cursor": "400"})
    assert deferred.params() == {"state": "deferred", "operation": "refund", "cursor": "400"}
    assert deferred.params(cursor=0) == {"state": "deferred", "operation": "refund"}, "the first page's links carry no cursor"
    assert JobQuery.parse(deferred.params()) == deferred


def live(state: str, op: str = "capture", store: str = "s1") -> dict[str, str | None]:
    """A record as the Jobs page reads it (only the fields it asks for)."""
    return {"state": state, "op": op, "kwargs": json.dumps({"storeId": store, "shoppingTripId": "t1"})}


@pytest.mark.parametrize(("params", "record", "admitted"), [
    ({"state": "queued"}, live("queued"), True),
    ({"state": "queued"}, live("running"), False),           # queued and running share an index; the record tells them apart
    ({"state": "running"}, live("running"), True),
    ({"state": "deferred"}, live("succeeded"), False),       # it moved on between the index read and the record read
    ({"state": "queued"}, {"state": None, "op": None, "kwargs": None}, False),  # its record expired
    ({"operation": "capture"}, live("queued"), True),
    ({"operation": "refund"}, live("queued"), False),
    ({"store": "s1"}, live("queued"), True),
    ({"store": "s2"}, live("queued"), False),
    ({"store": "s9", "operation": "notify"}, {"state": "queued", "op": "notify", "kwargs": json.dumps(NOTIFICATION)}, True),
])
def test_a_live_job_is_listed_only_in_its_state_operation_and_store(params: dict[str, str], record: dict[str, str | None], admitted: bool) -> None:
    assert JobQuery.parse(params).admits(record) is admitted


def test_what_a_live_job_waits_for() -> None:
    deferral = Deferral(DeferCause.PAUSED, until=1_800_000_000.0, operation=Operation.CAPTURE, paused_until=1_800_000_000.0)
    assert waits_for(LiveState.QUEUED, live("queued"), 0.0) == "a worker to take it from payments.capture"
    running = {**live("running"), "worker": "celery@w1", "last_attempt_at": "100"}
    assert waits_for(LiveState.RUNNING, running, 142.0) == "its call to finish: running on celery@w1 for 42s"
    assert waits_for(LiveState.DEFERRED, {**live("deferred"), "defer": deferral.to_json()}, 0.0) == deferral.describe()
    assert "paused until 2027-01-15T08:00:00Z" in deferral.describe()
    assert waits_for(LiveState.WAITING, {**live("waiting", "refund"), "waiting_for": "capture:s1:t1"}, 0.0) == (
        "its trip's capture capture:s1:t1 to succeed")


# --- a trip's amounts ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("capture_state", "captured", "refundable"), [
    ("succeeded", "0.10", "0.07"), ("dead", "0.00", "0.00"), ("queued", "0.00", "0.00"),
])
def test_nothing_is_refundable_beyond_what_was_captured(capture_state: str, captured: str, refundable: str) -> None:
    books = {"capture": "capture:s1:t1", "capture_cents": "10", "currency": "USD", "refunded": "3", "r:refund:r1": "3"}
    capture = {"op": "capture", "state": capture_state, "attempts": "1",
               "kwargs": json.dumps({"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "0.10", "code": "USD"}})}
    if capture_state == "succeeded":
        capture["result"] = "{}"
    refund = {"op": "refund", "state": "waiting" if capture_state != "succeeded" else "succeeded", "attempts": "0",
              "kwargs": json.dumps({"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "0.03", "code": "USD"}})}
    view = trip_view("s1", "t1", books, {"capture:s1:t1": capture, "refund:r1": refund}, {})
    assert (view["captured"], view["refundable"]) == (captured, refundable)


def test_a_kept_demo_prints_the_console_s_address_and_its_login() -> None:
    state = {"services": {name: {"url": f"http://127.0.0.1:{port}"} for name, port in (("flower", 5555), ("sandbox", 8081), ("serve", 8088))}}
    banner = _kept_banner(state, "payq:s3cret", True, 4242, "demo-store", "tok")
    assert "  console  http://127.0.0.1:8088/console/   user payq   password s3cret" in banner
    configured = _kept_banner(state, "payq:s3cret", False, 4242, "demo-store", "tok")
    assert "s3cret" not in configured and "console  http://127.0.0.1:8088/console/   user payq   password (from PAYQ_FLOWER_BASIC_AUTH)" in configured


def test_throughput_is_the_successes_of_the_whole_tenths_of_the_last_five_seconds_per_second() -> None:
    span = tenths(1000.05)
    assert (len(span), span[0], span[-1]) == (50, 9950, 9999), "the tenth still being counted is left out"
    assert per_second(["3", None, "7"] + [None] * 47) == 2.0
    assert per_second([None] * 50) == 0.0


@pytest.mark.parametrize(("operation", "kwargs", "key"), [
    ("capture", {"storeId": "s1", "shoppingTripId": "t1", "amount": {"amount": "1.00", "code": "USD"}}, "storeId s1, shoppingTripId t1"),
    ("refund", {"storeId": "s1", "shoppingTripId": "t1", "refundRequestId": "5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a"},
     "refundRequestId 5e0c7d2a-1b3f-4a6e-8d9c-0f1e2d3c4b5a"),
    ("feedback", {"storeId": "s1", "shoppingTripId": "t1", "paymentStatusTime": 1700000000},
     "storeId s1, shoppingTripId t1, paymentStatusTime 1700000000"),
    ("notify", {"id": "capture:s1:t1:succeeded", "type": "job.succeeded"}, "webhook-id capture:s1:t1:succeeded"),
])
def test_a_dead_letter_s_idempotency_key_is_named_from_its_own_fields(operation: str, kwargs: dict[str, object], key: str) -> None:
    assert idempotency_key(operation, kwargs) == key
