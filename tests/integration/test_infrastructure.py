"""The test infrastructure itself: the Pub/Sub emulator and PostgreSQL fixtures work."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from google.cloud import pubsub_v1

pytestmark = pytest.mark.integration


def test_pubsub_emulator_fixture_round_trips_a_message(pubsub_env: str) -> None:
    """A message published to the emulator with Google's client is pulled back intact."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path("infra-test", "infra-topic")
    subscription = subscriber.subscription_path("infra-test", "infra-subscription")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)
    publisher.publish(topic, b'{"hello": "world"}').result(timeout=10)
    response = subscriber.pull(subscription=subscription, max_messages=1, timeout=10)
    assert [m.message.data for m in response.received_messages] == [b'{"hello": "world"}']
    subscriber.close()


def test_postgres_fixture_gives_an_empty_database(postgres_url: str) -> None:
    """The session's PostgreSQL database exists and starts without tables."""
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        name = conn.execute(sa.text("select current_database()")).scalar_one()
        assert name.startswith("mps_test_")
        assert sa.inspect(conn).get_table_names() == []
    engine.dispose()
