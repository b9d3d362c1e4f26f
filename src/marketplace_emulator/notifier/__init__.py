"""Procurement notifications: recorded, then delivered to Pub/Sub and/or a push endpoint.

`Notifier` is the emulator's `EventSink`. Where a notification goes depends on how it is built:

- `PUBSUB_EMULATOR_HOST` set (or a `publisher` given): published to the Pub/Sub emulator on
  `projects/{pubsub_project}/topics/{providerId}`, the payload as UTF-8 JSON in `data`.
- `push_endpoint` given: POSTed to that URL as Pub/Sub's push envelope, with the subscription
  `projects/{pubsub_project}/subscriptions/{providerId}-push`.
- Both: delivered to both, independently, as a topic with one pull and one push subscription
  would deliver every message to each.
- `push_token` given: each push request carries `Authorization: Bearer` with the OIDC token it
  returns (signed push; `identity.oauth.PushSigner`).
- Neither: only recorded (`published()`, listed by `GET /emulator/v1/notifications`).

The emulator never publishes to Google's real Pub/Sub: without `PUBSUB_EMULATOR_HOST` no
publisher client is created.

    Notifier ── DeliveryQueue (core.py: faults, worker, retries, flush)
                   └── Target (targets.py): PubSubTarget | PushTarget
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import structlog

from marketplace_emulator.faults import FaultInjector
from marketplace_emulator.notifier.core import DeliveryQueue, NotifierStats, RetryPolicy
from marketplace_emulator.notifier.targets import (
    Message,
    PermanentDeliveryError,
    Publisher,
    PubSubTarget,
    PushRejectedError,
    PushTarget,
    Target,
    default_publisher,
    push_envelope,
)

__all__ = [
    "DEFAULT_PUBSUB_PROJECT",
    "Message",
    "Notifier",
    "NotifierStats",
    "PermanentDeliveryError",
    "PubSubTarget",
    "Publisher",
    "PushRejectedError",
    "PushTarget",
    "RetryPolicy",
    "push_envelope",
]

DEFAULT_PUBSUB_PROJECT = "cloudcommerceproc-prod"

log = structlog.get_logger(__name__)


class Notifier:
    """Records every notification in order and delivers it from a background thread.

    `publish()` never blocks on the network and never raises on a delivery failure. Failed
    deliveries are retried with exponential backoff (`retry`) until they succeed, until
    `retry.max_attempts`, or until `reset()`/`close()`.
    """

    def __init__(
        self,
        faults: FaultInjector,
        pubsub_project: str = DEFAULT_PUBSUB_PROJECT,
        push_endpoint: str | None = None,
        *,
        providers: Iterable[str] = (),
        publisher: Publisher | None = None,
        http_client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        reorder_window: int = 5,
        reorder_hold: float = 0.5,
        history_limit: int = 100_000,
        push_token: Callable[[], str] | None = None,
    ) -> None:
        self.pubsub_project = pubsub_project
        self.push_endpoint = push_endpoint
        self._pubsub: PubSubTarget | None = None
        targets: list[Target] = []
        if publisher is None and os.environ.get("PUBSUB_EMULATOR_HOST"):
            publisher = default_publisher()
        if publisher is not None:
            self._pubsub = PubSubTarget(pubsub_project, publisher)
            targets.append(self._pubsub)
        if push_endpoint:
            targets.append(
                PushTarget(push_endpoint, pubsub_project, client=http_client, sign=push_token)
            )
        self._queue = DeliveryQueue(
            faults,
            targets,
            retry=retry or RetryPolicy(),
            reorder_window=reorder_window,
            reorder_hold=reorder_hold,
            history_limit=history_limit,
        )
        for provider_id in providers:
            self.ensure_topic(provider_id)

    @property
    def modes(self) -> list[str]:
        """The active delivery targets: "pubsub", "push", both, or none (record only)."""
        return [target.name for target in self._queue.targets]

    def ensure_topic(self, provider_id: str) -> None:
        """Create the provider's topic on the Pub/Sub emulator now (no-op without Pub/Sub).

        A failure is logged, not raised: the topic is created again on the first publish.
        """
        if self._pubsub is None:
            return
        try:
            self._pubsub.ensure_topic(provider_id)
        except Exception as exc:  # the Pub/Sub emulator may be down; delivery retries later
            log.warning("notifier.topic_failed", provider_id=provider_id, error=repr(exc))

    def publish(self, provider_id: str, payload: dict[str, Any]) -> None:
        """Record `payload` and queue its delivery; returns at once."""
        self._queue.publish(provider_id, payload)

    def published(self) -> list[dict[str, Any]]:
        """Every payload published since the last reset, in order (duplicates not repeated)."""
        return self._queue.published()

    def stats(self) -> NotifierStats:
        return self._queue.stats()

    def flush(self, timeout: float) -> bool:
        """Release any held (reordered) batch and wait until nothing is left to deliver.

        True when every queued delivery succeeded or was given up within `timeout` seconds.
        """
        return self._queue.flush(timeout)

    def reset(self) -> None:
        """Forget recorded notifications and drop every queued or retrying delivery."""
        self._queue.reset()

    def close(self) -> None:
        """Stop the worker, dropping what is still queued, and close the clients."""
        self._queue.close()
