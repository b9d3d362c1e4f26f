"""How emulated state changes become procurement notifications.

The procurement models call `EventSink.publish(provider_id, payload)` for every transition; the
payload is the JSON object of reference section 2.3 (`eventId`, `eventType`, `providerId`, and
`account` or `entitlement`). The notifier (`marketplace_emulator.notifier`) is the production sink;
tests may use `RecordingSink`.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class EventSink(Protocol):
    def publish(self, provider_id: str, payload: dict[str, Any]) -> None:
        """Deliver one notification for `provider_id`. Must not raise on delivery failure."""


class RecordingSink:
    """Keeps every published notification in memory, in order (tests and the control API)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, provider_id: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.published.append((provider_id, payload))

    def clear(self) -> None:
        with self._lock:
            self.published.clear()
