"""The one call both transports make: hand a notification's bytes to the lifecycle service.

The listener (pull) and the push endpoint differ only in how they answer Pub/Sub; what
happens to a message, and whether it is acknowledged, is decided by
`service.notifications.handle_message`. This module adds the metrics and one safety net: if the
service raises (the database is down, so not even the inbox row could be written), the answer is
NACK, so Pub/Sub keeps the message.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Protocol

import structlog

from marketplace_saas.adapters import metrics
from marketplace_saas.service.procurement.inbox import Disposition, handle_message

if TYPE_CHECKING:
    from marketplace_saas.bootstrap import Container

log = structlog.get_logger(__name__)


class NotificationHandler(Protocol):
    def __call__(
        self, container: Container, data: bytes, *, message_id: str | None, source: str
    ) -> Disposition: ...


def event_type_of(data: bytes) -> str:
    """The notification's eventType for metrics (`ACCOUNT` for account messages without one)."""
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return "invalid"
    if not isinstance(payload, dict):
        return "invalid"
    event_type = payload.get("eventType")
    if event_type is None and isinstance(payload.get("account"), dict):
        return "ACCOUNT"
    return metrics.event_type_label(event_type)


def deliver(
    container: Container,
    data: bytes,
    *,
    message_id: str | None,
    source: str,
    handler: NotificationHandler | None = None,
) -> Disposition:
    """Process one notification; ACK only once its effects are committed (or it is parked)."""
    event_type = event_type_of(data)
    metrics.NOTIFICATIONS_RECEIVED.labels(event_type, source).inc()
    handle = handler or handle_message
    try:
        disposition = handle(container, data, message_id=message_id, source=source)
    except Exception:
        # The service stores the raw message first; reaching here means even that failed.
        log.exception("notification.unhandled_error", message_id=message_id, source=source)
        disposition = Disposition.NACK
    if disposition is Disposition.ACK:
        metrics.NOTIFICATIONS_PROCESSED.labels(event_type, source).inc()
    else:
        metrics.NOTIFICATIONS_FAILED.labels(event_type, source).inc()
    return disposition
