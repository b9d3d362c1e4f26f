"""Helpers for the listener tests: a fresh topic and subscription on the real Pub/Sub emulator."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import pubsub_v1  # type: ignore[import-untyped]


@dataclass
class Channel:
    """One topic with one pull subscription (no retry policy: a nack comes back at once)."""

    topic: str
    subscription: str
    publisher: Any
    subscriber: Any

    def publish(self, payload: dict[str, Any] | bytes) -> str:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return str(self.publisher.publish(self.topic, data).result(timeout=30))

    def expire_leases(self) -> None:
        """Make every unacknowledged message deliverable now, as if all leases had expired.

        What a killed subscriber held comes back only when its lease expires (10 to 60 s and
        more on the emulator). A seek to a time before every message was published marks all
        retained, unacknowledged messages deliverable at once; acknowledged ones are not
        retained, so they stay acknowledged.
        """
        self.subscriber.seek(
            request={"subscription": self.subscription, "time": datetime(2000, 1, 1, tzinfo=UTC)}
        )

    def pull_now(self) -> list[Any]:
        """Messages available right now (not leased by anyone): empty once all were acked."""
        response = self.subscriber.pull(
            request={
                "subscription": self.subscription,
                "max_messages": 100,
                "return_immediately": True,  # deprecated for Google, honoured by the emulator
            },
            timeout=10,
            retry=None,
        )
        return list(response.received_messages)


@pytest.fixture(name="channel")
def channel_fixture(pubsub_env: str) -> Iterator[Channel]:
    suffix = uuid.uuid4().hex[:10]
    topic = f"projects/cloudcommerceproc-prod/topics/DEMO-test-{suffix}"
    subscription = f"projects/sandbox/subscriptions/listener-{suffix}"
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    publisher.create_topic(request={"name": topic})
    subscriber.create_subscription(
        request={"name": subscription, "topic": topic, "ack_deadline_seconds": 10}
    )
    yield Channel(topic, subscription, publisher, subscriber)
    subscriber.delete_subscription(request={"subscription": subscription})
    publisher.delete_topic(request={"topic": topic})
    subscriber.close()
    publisher.transport.close()


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "condition",
    explain: Callable[[], object] | None = None,
    fail: bool = True,
) -> Any:
    """Poll `condition` until it is truthy (returned) or fail after `timeout` seconds.

    With `fail=False`, the last (falsy) value is returned instead of failing the test.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            if not fail:
                return value
            detail = f": {explain()}" if explain is not None else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(0.05)
