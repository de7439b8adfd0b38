"""payq's kombu transport: kombu's Redis transport with one client per pool, under the ``redis://`` name."""

from __future__ import annotations

from config.settings import Settings
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
