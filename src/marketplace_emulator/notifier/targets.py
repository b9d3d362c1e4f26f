"""Where notifications go: a topic on the Pub/Sub emulator, or Pub/Sub's push envelope to a URL.

A target delivers one `Message` and reports the outcome through a callback: `None` for success,
the exception otherwise. `PermanentDeliveryError` means "retrying cannot help" (a malformed
topic name, for example); every other exception is retried by the notifier with backoff.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog
from google.api_core import exceptions as api_exceptions

log = structlog.get_logger(__name__)

DoneCallback = Callable[[BaseException | None], None]


@dataclass(frozen=True)
class Message:
    """One delivery of one notification: the same `message_id` on every retry of it."""

    provider_id: str
    data: bytes
    message_id: str
    publish_time: str


class PermanentDeliveryError(Exception):
    """Delivery failed in a way that retrying cannot fix; the notifier gives up at once."""


class PushRejectedError(Exception):
    """The push endpoint answered with a non-2xx status (Pub/Sub retries these)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"push endpoint answered HTTP {status_code}")
        self.status_code = status_code


class Target(Protocol):
    name: str

    def deliver(self, message: Message, done: DoneCallback) -> None:
        """Start delivering `message`; call `done` exactly once with the outcome."""

    def close(self) -> None: ...


class PublishFuture(Protocol):
    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...

    def exception(self, timeout: float | None = None) -> BaseException | None: ...


class Publisher(Protocol):
    """The part of `google.cloud.pubsub_v1.PublisherClient` the notifier uses."""

    def create_topic(self, *, name: str, timeout: float) -> object: ...

    def publish(self, topic: str, data: bytes, *, timeout: float) -> PublishFuture: ...

    def stop(self) -> None: ...


# How long the publisher client gathers messages into one Publish call (its default: 10 ms). Each
# call costs the emulator about 0.5 ms of CPU whatever it carries; at a hundred notifications a
# second, 50 ms puts about five in a call instead of one, for at most 40 ms more delivery latency.
PUBLISH_BATCH_LATENCY_SECONDS = 0.05


def default_publisher() -> Publisher:
    """Google's publisher client; it honours `PUBSUB_EMULATOR_HOST` by itself."""
    from google.cloud import pubsub_v1  # type: ignore[import-untyped]

    batching = pubsub_v1.types.BatchSettings(max_latency=PUBLISH_BATCH_LATENCY_SECONDS)
    client: Publisher = pubsub_v1.PublisherClient(batch_settings=batching)
    return client


class PubSubTarget:
    """Publishes the payload as UTF-8 JSON to `projects/{project}/topics/{providerId}`.

    The topic is created the first time a provider is seen (an existing topic is fine). Publishing
    is asynchronous: the client batches messages and reports each outcome from its own threads.
    """

    name = "pubsub"

    def __init__(self, project: str, publisher: Publisher, *, rpc_timeout: float = 10.0) -> None:
        self.project = project
        self._publisher = publisher
        self._rpc_timeout = rpc_timeout
        self._topics: set[str] = set()
        self._lock = threading.Lock()

    def topic_path(self, provider_id: str) -> str:
        return f"projects/{self.project}/topics/{provider_id}"

    def ensure_topic(self, provider_id: str) -> None:
        """Create the provider's topic unless this target already knows it exists."""
        topic = self.topic_path(provider_id)
        with self._lock:
            if topic in self._topics:
                return
        try:
            self._publisher.create_topic(name=topic, timeout=self._rpc_timeout)
        except api_exceptions.AlreadyExists:
            pass
        except api_exceptions.InvalidArgument as exc:
            raise PermanentDeliveryError(f"cannot create topic {topic}: {exc}") from exc
        else:
            log.info("notifier.topic_created", topic=topic)
        with self._lock:
            self._topics.add(topic)

    def deliver(self, message: Message, done: DoneCallback) -> None:
        self.ensure_topic(message.provider_id)
        topic = self.topic_path(message.provider_id)
        future = self._publisher.publish(topic, message.data, timeout=self._rpc_timeout)

        def finished(completed: PublishFuture) -> None:
            error = completed.exception()
            if isinstance(error, api_exceptions.NotFound):
                # The topic vanished (the Pub/Sub emulator restarted): create it on the retry.
                with self._lock:
                    self._topics.discard(topic)
            elif isinstance(error, api_exceptions.InvalidArgument):
                error = PermanentDeliveryError(f"Pub/Sub refused the message: {error}")
            done(error)

        future.add_done_callback(finished)

    def close(self) -> None:
        self._publisher.stop()


def push_envelope(message: Message, subscription: str) -> dict[str, Any]:
    """Pub/Sub's push request body for one message (reference section 2.2)."""
    return {
        "message": {
            "data": base64.b64encode(message.data).decode("ascii"),
            "attributes": {},
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": message.publish_time,
            "publish_time": message.publish_time,
        },
        "subscription": subscription,
    }


class PushTarget:
    """POSTs Pub/Sub's push envelope to one URL; any 2xx acks, anything else is retried.

    With `sign` (a function giving an OIDC token), each request carries
    `Authorization: Bearer <token>`, as Pub/Sub's authenticated push does.
    """

    name = "push"

    def __init__(
        self,
        endpoint: str,
        project: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        sign: Callable[[], str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.project = project
        self._client = client or httpx.Client(timeout=timeout)
        self._sign = sign

    def subscription_path(self, provider_id: str) -> str:
        return f"projects/{self.project}/subscriptions/{provider_id}-push"

    def deliver(self, message: Message, done: DoneCallback) -> None:
        envelope = push_envelope(message, self.subscription_path(message.provider_id))
        try:
            headers = {"Authorization": f"Bearer {self._sign()}"} if self._sign else None
            response = self._client.post(self.endpoint, json=envelope, headers=headers)
        except httpx.HTTPError as exc:
            done(exc)
            return
        done(None if response.is_success else PushRejectedError(response.status_code))

    def close(self) -> None:
        self._client.close()
