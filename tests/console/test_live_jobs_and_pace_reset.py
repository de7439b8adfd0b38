"""Against a private Redis: a Jobs page reads a bounded part of its index however narrow the filter; ``payq pace reset OP``; throughput."""

from __future__ import annotations

import json
import time

from config.settings import Settings
from payapi.operations import Operation
from payq.serve.console.live import JobQuery, page_of
from payq.serve.console.throughput import recent
from tasks.jobs.deferral import Deferral
from tasks.pacing.pacer import count_call
from tasks.producer import prepare
from tasks.redis import keys
from tasks.states import DeferCause
from tests.support.payq_cli import invoke
from workers.runtime import Runtime


def test_a_narrow_filter_reads_at_most_its_budget_per_page_and_the_next_page_carries_on(op_settings: Settings) -> None:
    rt = Runtime.build(op_settings)
    now = time.time()
    crowd = [prepare("cancel", {"storeId": "s1", "shoppingTripId": f"t{i:04}"}) for i in range(450)]
    needle = prepare("cancel", {"storeId": "s2", "shoppingTripId": "last"})
    rt.jobs.enqueue(crowd, now=now - 10)
    rt.jobs.enqueue([needle], now=now)  # the newest: last in the index, oldest first

    query = JobQuery.parse({"store": "s2"})
    pages = []
    while True:
        page = page_of(rt.redis, query, now, size=5, budget=200)
        pages.append(page)
        assert page.scanned <= 200 + 199, "a page stops within one batch of its budget"
        if page.next_cursor is None:
            break
        query = JobQuery.parse(query.params(cursor=page.next_cursor))
    assert [len(p.rows) for p in pages] == [0, 0, 1]
    assert pages[-1].rows[0].id == needle.job_id and pages[-1].total == 451
    assert sum(p.scanned for p in pages) == 451, "every entry looked at once"

    first = page_of(rt.redis, JobQuery.parse({"store": "s1"}), now, size=5)
    assert [r.id for r in first.rows] == [j.job_id for j in crowd[:5]] and first.next_cursor == 5 and first.scanned == 5


def test_payq_pace_reset_lifts_the_pause_and_learned_pace_releases_the_held_jobs_and_logs_who(op_settings: Settings, redis_url: str) -> None:
    rt = Runtime.build(op_settings)
    now = time.time()
    until = now + 600
    rt.pacer.pause(Operation.REFUND, until, now)
    rt.redis.hset(keys.pace(Operation.REFUND), mapping={"accepted": "2", "since": until, "climb": 6000})
    # a store's clocks as BEGIN left them during the pause: its next turns after the pause's end
    rt.redis.hset(keys.fair_clocks(Operation.REFUND), mapping={"turn:s1": until + 0.5, "line:s1": until + 30})
    rt.redis.zadd(keys.fair_waiting(Operation.REFUND), {"s1": until + 30})
    paced = prepare("feedback", {"storeId": "s1", "shoppingTripId": "t1", "totalAmount": {"amount": "1.00", "code": "USD"},
                                 "settledAmount": {"amount": "1.00", "code": "USD"}})
    rt.jobs.enqueue([paced], now=now)
    rt.jobs.defer(paced.job_id, Deferral(DeferCause.PACED, until, Operation.FEEDBACK, turn=until, pace=0.5), now)

    ran = invoke(redis_url, "pace", "reset", "refund")
    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith("refund: ended its pause (it ran until ")
    assert "forgot its learned pace (2 calls/s" in ran.stdout and "0 deferred jobs made due now" in ran.stdout
    assert rt.redis.exists(keys.pause(Operation.REFUND), keys.pace(Operation.REFUND)) == 0
    assert rt.redis.exists(keys.fair_clocks(Operation.REFUND), keys.fair_waiting(Operation.REFUND)) == 0, "the stores start afresh"
    assert rt.redis.zscore(keys.DEFERRED, paced.job_id) == until, "a feedback waits for its own endpoint, not the refunds'"
    [entry] = [json.loads(e) for e in rt.redis.lrange(keys.ENDPOINT_LOG, 0, -1)]
    assert entry["operation"] == "refund" and entry["by"].endswith("(payq pace reset)")

    again = invoke(redis_url, "pace", "reset", "feedback")
    assert again.code == 0 and again.stdout.strip() == "feedback: no pause to end; no learned pace to forget; 1 deferred job made due now"
    assert (rt.redis.zscore(keys.DEFERRED, paced.job_id) or until) <= time.time()
    assert rt.redis.llen(keys.ENDPOINT_LOG) == 2

    log = invoke(redis_url, "pace", "log")
    assert log.code == 0 and [line.split("): ")[1] for line in log.stdout.splitlines()] == [again.stdout.strip(), ran.stdout.strip()]
    assert [lift["operation"] for lift in invoke(redis_url, "pace", "log", "--json", "--limit", "1").json()] == ["feedback"]

    unknown = invoke(redis_url, "pace", "reset", "notify")
    assert unknown.code == 2 and "'notify' is not one of" in unknown.stderr


def test_the_overview_s_throughput_counts_the_successes_workers_recorded_in_the_last_five_seconds(op_settings: Settings) -> None:
    rt = Runtime.build(op_settings)
    now = 1_800_000_000.0
    pipe = rt.redis.pipeline(transaction=False)
    for at, status in ((now - 4.9, 200), (now - 1.0, 200), (now - 1.0, 204), (now - 0.5, 429), (now - 6.0, 200), (now, 200)):
        count_call(pipe, Operation.CAPTURE, status, at)  # what a worker records with each call
    count_call(pipe, Operation.REFUND, 200, now - 2.0)
    pipe.execute()
    rates = recent(rt.redis, [Operation.CAPTURE, Operation.REFUND, Operation.CANCEL], now)
    # 3 successes inside the window; the 429, the one 6 s ago and the one in the tenth still being counted are not
    assert rates == {"capture": 3 / 5, "refund": 1 / 5, "cancel": 0.0}
