"""Cloud Pub/Sub: the subscription on Google's topic, and the clients that use it.

Google's client reads `PUBSUB_EMULATOR_HOST` from the environment; when the variable was given in
a `.env` file only, `use_emulator_from(settings)` exports it so the client sees it too.

    PubSubError
     ├── TopicNotFoundError      the provider's topic does not exist (or is not visible to us)
     └── PubSubPermissionError   the credentials may not create or read the subscription
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.cloud import pubsub_v1  # type: ignore[import-untyped]

from marketplace_saas.config import Settings

# A nacked message comes back after 10 s, then up to 10 min (real Pub/Sub; the emulator
# redelivers at once). A pulled message is leased for 20 s; the listener extends the leases of
# what it is working on, so a crashed process's messages come back within 20 s.
MIN_RETRY_BACKOFF_SECONDS = 10
MAX_RETRY_BACKOFF_SECONDS = 600
ACK_DEADLINE_SECONDS = 20


class PubSubError(Exception):
    """A Pub/Sub call failed; the message says what to do about it."""


class TopicNotFoundError(PubSubError):
    pass


class PubSubPermissionError(PubSubError):
    pass


@dataclass(frozen=True)
class SubscriptionResult:
    path: str
    topic: str
    created: bool


def use_emulator_from(settings: Settings) -> None:
    """Export PUBSUB_EMULATOR_HOST for Google's client when the settings name an emulator."""
    if settings.pubsub_emulator_host and not os.environ.get("PUBSUB_EMULATOR_HOST"):
        os.environ["PUBSUB_EMULATOR_HOST"] = settings.pubsub_emulator_host


def subscriber_client(settings: Settings) -> Any:
    use_emulator_from(settings)
    return pubsub_v1.SubscriberClient()


def publisher_client(settings: Settings) -> Any:
    use_emulator_from(settings)
    return pubsub_v1.PublisherClient()


def create_subscription(
    settings: Settings,
    *,
    client: Any = None,
    topic: str | None = None,
) -> SubscriptionResult:
    """Create `settings.subscription_path` on the provider's topic; an existing one is kept."""
    topic = topic or settings.topic_path
    path = settings.subscription_path
    own_client = client is None
    subscriber = client or subscriber_client(settings)
    request = {
        "name": path,
        "topic": topic,
        "ack_deadline_seconds": ACK_DEADLINE_SECONDS,
        "retry_policy": {
            "minimum_backoff": timedelta(seconds=MIN_RETRY_BACKOFF_SECONDS),
            "maximum_backoff": timedelta(seconds=MAX_RETRY_BACKOFF_SECONDS),
        },
    }
    try:
        subscriber.create_subscription(request=request)
        return SubscriptionResult(path=path, topic=topic, created=True)
    except google_exceptions.AlreadyExists:
        return SubscriptionResult(path=path, topic=topic, created=False)
    except google_exceptions.NotFound as exc:
        raise TopicNotFoundError(
            f"topic {topic} not found: check MARKETPLACE_PROVIDER_ID, and that your Partner "
            f"Engineer created the topic and allowed your service account on it ({exc.message})"
        ) from exc
    except google_exceptions.PermissionDenied as exc:
        raise PubSubPermissionError(
            f"permission denied creating {path} on {topic}: the service account needs the "
            f"Pub/Sub Editor role in project {settings.project} and must be linked in Producer "
            f"Portal ({exc.message})"
        ) from exc
    finally:
        if own_client:
            subscriber.close()


def ensure_topic(settings: Settings, topic: str) -> bool:
    """Create `topic` (on the Pub/Sub emulator, for the sandbox); False when it existed."""
    publisher = publisher_client(settings)
    try:
        publisher.create_topic(request={"name": topic})
        return True
    except google_exceptions.AlreadyExists:
        return False
    finally:
        publisher.transport.close()
