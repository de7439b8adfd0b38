"""A resend with other fields is refused 409 naming each field, stored and sent; an exact resend stays 200; a batch answers each job.

The first test is a store backend not written in Python: Node's ``fetch``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import redis

from tasks.store import lanes
from tests.serve.helpers import STORE_B, TOKEN_A, TOKEN_B, cancel, capture, errors, post, problem, refund
from tests.support.serve import ServeProcess

NODE_CLIENT = """
const [url, token] = process.argv.slice(-2);
async function send(amount) {
  const response = await fetch(url + "/v1/jobs", {
    method: "POST", headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    body: JSON.stringify({operation: "capture", storeId: "store-a", shoppingTripId: "trip-1", amount: {amount, code: "USD"}}),
  });
  return {status: response.status, type: response.headers.get("content-type"), body: await response.json()};
}
(async () => {
  const answers = [await send(19.99), await send(99), await send("19.990")];
  console.log(JSON.stringify(answers));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the client that is not Python is Node's fetch")
def test_a_node_client_resending_with_a_changed_amount_gets_409_naming_amount(serve: ServeProcess, rdb: redis.Redis) -> None:
    done = subprocess.run(["node", "-e", NODE_CLIENT, serve.url, TOKEN_A], capture_output=True, text=True, timeout=60, check=True)
    first, changed, same = json.loads(done.stdout)

    assert (first["status"], first["body"]) == (202, {"jobId": "capture:store-a:trip-1", "created": True})
    assert changed["status"] == 409 and changed["type"] == "application/problem+json"
    assert changed["body"]["type"] == "urn:payq:problem:job-conflict"
    assert [(e["field"], e["stored"], e["sent"]) for e in changed["body"]["errors"]] == [("amount.amount", "19.99", "99")]
    assert (same["status"], same["body"]) == (200, {"jobId": "capture:store-a:trip-1", "created": False})
    assert json.loads(rdb.hget("payq:job:capture:store-a:trip-1", "kwargs"))["amount"]["amount"] == "19.99"


def test_each_differing_field_is_named_with_its_stored_and_sent_value(serve: ServeProcess) -> None:
    assert post(serve, "/v1/jobs", capture("t1", amount="19.99")).status_code == 202

    refused = problem(post(serve, "/v1/jobs", capture("t1", amount=99, currency="EUR")), 409)

    assert refused["detail"] == ("a job with this id was enqueued before with other fields (amount.amount, amount.code); "
                                 "nothing was changed")
    assert [(e["field"], e["stored"], e["sent"]) for e in refused["errors"]] == [("amount.amount", "19.99", "99"), ("amount.code", "USD", "EUR")]
    assert refused["errors"][0]["rule"].startswith("differs from the job enqueued before under this id: stored 19.99, sent 99")


def test_a_batch_with_one_conflicting_job_enqueues_the_others_and_answers_each(serve: ServeProcess, rdb: redis.Redis) -> None:
    assert post(serve, "/v1/jobs", capture("t1", amount="19.99")).status_code == 202

    answer = post(serve, "/v1/jobs/batch", {"jobs": [cancel("t2"), capture("t1", amount="99"), capture("t1", amount="19.990"), cancel("t3")]})

    assert answer.status_code == 202
    lines = answer.json()["jobs"]
    assert [(j["jobId"], j["created"], j["status"]) for j in lines] == [
        ("cancel:store-a:t2", True, 202), ("capture:store-a:t1", False, 409), ("capture:store-a:t1", False, 200), ("cancel:store-a:t3", True, 202)]
    assert lines[1]["problem"]["type"] == "urn:payq:problem:job-conflict"
    assert [(e["field"], e["stored"], e["sent"]) for e in lines[1]["problem"]["errors"]] == [("amount.amount", "19.99", "99")]
    assert lanes.depths(rdb, ["payments.cancel", "payments.capture"]) == {"payments.cancel": 2, "payments.capture": 1}


def test_a_batch_in_which_nothing_is_new_and_a_job_conflicts_is_409_with_each_job_s_answer(serve: ServeProcess) -> None:
    assert post(serve, "/v1/jobs/batch", {"jobs": [cancel("t2"), capture("t1", amount="19.99")]}).status_code == 202

    refused = problem(post(serve, "/v1/jobs/batch", {"jobs": [cancel("t2"), capture("t1", amount="9.99")]}), 409)

    assert errors(refused) == [(1, "amount.amount", refused["errors"][0]["rule"])]
    assert [j["status"] for j in refused["jobs"]] == [200, 409]


def test_the_same_id_twice_in_one_batch_with_other_fields_refuses_the_second(serve: ServeProcess, rdb: redis.Redis) -> None:
    answer = post(serve, "/v1/jobs/batch", {"jobs": [capture("t1", amount="1.00"), capture("t1", amount="2.00")]})

    assert answer.status_code == 202
    assert [j["status"] for j in answer.json()["jobs"]] == [202, 409]
    assert json.loads(rdb.hget("payq:job:capture:store-a:t1", "kwargs"))["amount"]["amount"] == "1.00"


def test_another_store_s_refund_under_the_same_id_is_refused_without_a_value_of_it(serve: ServeProcess) -> None:
    assert post(serve, "/v1/jobs", capture("t1", amount="19.99")).status_code == 202
    assert post(serve, "/v1/jobs", refund("t1", amount="7.00")).status_code == 202

    refused = problem(post(serve, "/v1/jobs", refund("t9", amount="1.00", store=STORE_B), token=TOKEN_B), 409)

    assert refused["errors"] == [{"field": "refundRequestId",
                                  "rule": "is already the id of another job, not of this token's stores: make a new one"}]
    text = json.dumps(refused)
    assert "7.00" not in text and "store-a" not in text and "t1" not in text


@pytest.mark.parametrize("body", [capture("t1", amount="19.99"), capture("t1", amount=19.99), capture("t1", amount="19.990")])
def test_an_exact_resend_stays_200_created_false(serve: ServeProcess, body: dict[str, Any]) -> None:
    assert post(serve, "/v1/jobs", capture("t1", amount="19.99")).status_code == 202

    again = post(serve, "/v1/jobs", body)

    assert (again.status_code, again.json()) == (200, {"jobId": "capture:store-a:t1", "created": False})
