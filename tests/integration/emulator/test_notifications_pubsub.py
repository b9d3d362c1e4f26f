"""The notifier against the real Cloud Pub/Sub emulator, read back with Google's subscriber."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import pubsub_v1

from marketplace_emulator.faults import FaultInjector, FaultSettings
from marketplace_emulator.notifier import Notifier, RetryPolicy

pytestmark = pytest.mark.integration

PROJECT = "cloudcommerceproc-prod"
FAST_RETRY = RetryPolicy(initial_backoff=0.05, max_backoff=0.5, max_attempts=5)


class Subscription:
    """A pull subscription created on a provider's topic, drained with the official client."""

    def __init__(self, provider_id: str, project: str = PROJECT) -> None:
        self.client = pubsub_v1.SubscriberClient()
        self.topic = f"projects/{project}/topics/{provider_id}"
        self.path = self.client.subscription_path("partner-project", f"sub-{uuid.uuid4().hex}")
        self.client.create_subscription(name=self.path, topic=self.topic)

    def receive(self, count: int, timeout: float = 20.0) -> list[pubsub_v1.types.PubsubMessage]:
        """Pull and ack until `count` messages arrived (or `timeout`); returns what arrived."""
        received: list[pubsub_v1.types.PubsubMessage] = []
        deadline = time.monotonic() + timeout
        while len(received) < count and time.monotonic() < deadline:
            response = self.client.pull(subscription=self.path, max_messages=100, timeout=5)
            if response.received_messages:
                self.client.acknowledge(
                    subscription=self.path,
                    ack_ids=[m.ack_id for m in response.received_messages],
                )
                received += [m.message for m in response.received_messages]
        return received

    def payloads(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        return [json.loads(m.data.decode("utf-8")) for m in self.receive(count, timeout)]

    def close(self) -> None:
        self.client.delete_subscription(subscription=self.path)
        self.client.close()


def new_provider() -> str:
    return f"PROVIDER-{uuid.uuid4().hex[:10]}"


def event(n: int, provider: str) -> dict[str, Any]:
    return {
        "eventId": f"{provider}-event-{n}",
        "eventType": "ENTITLEMENT_CREATION_REQUESTED",
        "providerId": provider,
        "entitlement": {"id": f"ent-{n}", "updateTime": "2026-01-01T00:00:00Z"},
    }


@pytest.fixture
def provider() -> str:
    return new_provider()


@pytest.fixture
def notifier(pubsub_env: str, provider: str) -> Iterator[Notifier]:
    notifier = Notifier(FaultInjector(), providers=[provider], retry=FAST_RETRY)
    yield notifier
    notifier.close()


@pytest.fixture
def subscription(notifier: Notifier, provider: str) -> Iterator[Subscription]:
    sub = Subscription(provider)
    yield sub
    sub.close()


def test_topic_is_created_at_start_for_each_given_provider(
    notifier: Notifier, provider: str
) -> None:
    """Notifier(providers=[p]) creates projects/cloudcommerceproc-prod/topics/{p} right away."""
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.get_topic(topic=f"projects/{PROJECT}/topics/{provider}")
    assert topic.name == f"projects/{PROJECT}/topics/{provider}"
    assert notifier.modes == ["pubsub"]


def test_topic_is_created_when_a_provider_is_first_seen(pubsub_env: str) -> None:
    """A provider unknown at start gets its topic on its first notification."""
    provider = new_provider()
    notifier = Notifier(FaultInjector(), pubsub_project="local-project", retry=FAST_RETRY)
    try:
        notifier.publish(provider, event(1, provider))
        assert notifier.flush(timeout=20)
        assert notifier.stats().delivered == 1
        topic = pubsub_v1.PublisherClient().get_topic(
            topic=f"projects/local-project/topics/{provider}"
        )
        assert topic.name.endswith(f"/topics/{provider}")
    finally:
        notifier.close()


def test_payloads_arrive_as_utf8_json_through_the_pubsub_emulator(
    notifier: Notifier, subscription: Subscription, provider: str
) -> None:
    """What the subscriber receives is exactly the published payload, in message data."""
    sent = [event(n, provider) for n in range(5)]
    sent[0]["entitlement"]["newPlan"] = "plän-pro"
    for payload in sent:
        notifier.publish(provider, payload)
    assert notifier.flush(timeout=20)
    received = subscription.payloads(5)
    assert sorted(received, key=lambda p: p["eventId"]) == sent


def test_duplicates_arrive_twice_with_the_same_event_id(pubsub_env: str, provider: str) -> None:
    """duplicateRate=1: every payload reaches the subscriber as two messages, one eventId."""
    faults = FaultInjector()
    faults.configure(FaultSettings.model_validate({"notifications": {"duplicateRate": 1}}))
    notifier = Notifier(faults, providers=[provider], retry=FAST_RETRY)
    subscription = Subscription(provider)
    try:
        for n in range(3):
            notifier.publish(provider, event(n, provider))
        assert notifier.flush(timeout=20)
        messages = subscription.receive(6)
        ids = sorted(json.loads(m.data)["eventId"] for m in messages)
        assert ids == sorted([f"{provider}-event-{n}" for n in range(3)] * 2)
        assert len({m.message_id for m in messages}) == 6
    finally:
        subscription.close()
        notifier.close()


def test_reordered_delivery_loses_nothing(pubsub_env: str, provider: str) -> None:
    """reorder=true: every notification still reaches the subscriber, including the last batch."""
    faults = FaultInjector()
    faults.configure(FaultSettings.model_validate({"seed": 5, "notifications": {"reorder": True}}))
    notifier = Notifier(faults, providers=[provider], retry=FAST_RETRY, reorder_hold=60)
    subscription = Subscription(provider)
    try:
        for n in range(12):
            notifier.publish(provider, event(n, provider))
        assert notifier.flush(timeout=20)
        received = subscription.payloads(12)
        assert sorted(p["eventId"] for p in received) == sorted(
            f"{provider}-event-{n}" for n in range(12)
        )
    finally:
        subscription.close()
        notifier.close()
