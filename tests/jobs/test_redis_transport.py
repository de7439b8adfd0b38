"""payq's kombu transport: kombu's Redis transport with one client per pool and its own fetch, under the ``redis://`` name."""

from __future__ import annotations

import json

import redis
from kombu import Message

from config.settings import Settings
from tasks.producer import Producer
from tasks.redis import keys
from tasks.store import lanes
from tests.support.jobs import USD_1
from tests.support.names import queue_of
from workers.app import create_app
from workers.redis_transport import Transport


def test_redis_urls_use_payqs_transport_and_still_show_as_redis() -> None:
    app = create_app(Settings(redis_url="redis://:s3cret@127.0.0.1:1/0"))
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)
        # Celery's "Connected to" line and Flower (which reads the scheme to show queues) see a Redis broker
        assert conn.as_uri() == "redis://:**@127.0.0.1:1/0"


def test_a_channel_reuses_one_client_for_its_commands(redis_url: str) -> None:
    app = create_app(Settings(redis_url=redis_url))
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        assert first.ping()


def test_a_channel_takes_messages_into_its_workers_in_flight_list_and_a_closing_one_gives_back_what_it_did_not_settle(
    redis_url: str, producer: Producer, rdb: redis.Redis,
) -> None:
    app = create_app(Settings(redis_url=redis_url))
    rt = app.payq_runtime.get()
    rt.degraded.saw(rt.replicas.look(rt.redis))  # the worker's first look at Redis (its heartbeat's, in a worker)
    ids = [producer.enqueue_capture(storeId="s1", shoppingTripId=f"t{i}", amount=USD_1) for i in range(4)]
    held = keys.inflight(rt.holdings.worker, queue_of("capture"))
    got: list[Message] = []
    with app.connection_for_read() as conn:
        channel = conn.channel()
        channel.basic_qos(0, 3, False)  # three threads free: one fetch takes three
        channel.basic_consume(queue_of("capture"), False, lambda message: got.append(message), "c1")
        conn.drain_events(timeout=5)
        assert [m.headers["id"] for m in got] == ids[:3]
        assert rdb.llen(held) == 3 and lanes.depths(rdb, [queue_of("capture")])[queue_of("capture")] == 1
        got[0].ack()
        got[1].reject(requeue=True)
        channel.close()

    # the acknowledged one is gone; the rejected one and the one never settled are back at the head of their queue (its own
    # list, taken before the stores' lanes)
    assert rdb.llen(held) == 0
    assert [json.loads(m)["headers"]["id"] for m in lanes.messages(rdb, queue_of("capture"))] == [ids[2], ids[1], ids[3]]
