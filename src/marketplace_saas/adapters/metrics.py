"""Prometheus metrics: one registry-wide set, served by `GET /metrics`.

    marketplace_notifications_received_total{event_type, source}
    marketplace_notifications_processed_total{event_type, source}   acked: done, ignored or parked
    marketplace_notifications_failed_total{event_type, source}      nacked: Pub/Sub delivers again
    marketplace_api_calls_total{api, method, outcome}
    marketplace_api_call_seconds{api, method}
    marketplace_sign_ins_total{method, outcome}   console sign-ins: form|basic, ok|refused|throttled
    marketplace_sync_blocked                   1 while the mass-deletion guard holds this
                                               process's last sync, else 0
    marketplace_syncs_blocked_total            syncs the guard stopped before changing anything
    marketplace_sync_deletions_held{kind}      what the last stopped sync would have deleted

`instrumented(gateway, api=...)` wraps any gateway object so that every public method call is
counted and timed, without the gateway knowing about Prometheus.
"""

from __future__ import annotations

import re
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS_RECEIVED = Counter(
    "marketplace_notifications_received",
    "Procurement notifications received, by event type and transport.",
    ["event_type", "source"],
)
NOTIFICATIONS_PROCESSED = Counter(
    "marketplace_notifications_processed",
    "Notifications acknowledged after their effects were committed (or parked).",
    ["event_type", "source"],
)
NOTIFICATIONS_FAILED = Counter(
    "marketplace_notifications_failed",
    "Notifications not acknowledged (transient failure): Pub/Sub delivers them again.",
    ["event_type", "source"],
)
NOTIFICATIONS_RESUMED = Counter(
    "marketplace_notifications_resumed",
    "Stored notifications processed again from the inbox because Pub/Sub had stopped "
    "delivering them, by the status they reached.",
    ["status"],
)
API_CALLS = Counter(
    "marketplace_api_calls",
    "Calls to Google's APIs, by API, method and outcome (ok or the exception's class).",
    ["api", "method", "outcome"],
)
API_CALL_SECONDS = Histogram(
    "marketplace_api_call_seconds",
    "Latency of calls to Google's APIs, retries included.",
    ["api", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SYNC_BLOCKED = Gauge(
    "marketplace_sync_blocked",
    "1 while this process's last sync was stopped by the mass-deletion guard, else 0.",
)
SYNCS_BLOCKED = Counter(
    "marketplace_syncs_blocked",
    "Syncs the mass-deletion guard stopped before changing anything.",
)
SYNC_DELETIONS_HELD = Gauge(
    "marketplace_sync_deletions_held",
    "Deletions the last stopped sync would have made, by kind (accounts, entitlements).",
    ["kind"],
)

_LABEL = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def event_type_label(event_type: object) -> str:
    """A bounded label value: a well-formed eventType as is, anything else as `other`."""
    if isinstance(event_type, str) and _LABEL.match(event_type):
        return event_type
    return "other"


class _Instrumented:
    """Forwards attribute access to the wrapped gateway, timing and counting method calls."""

    def __init__(self, wrapped: Any, api: str) -> None:
        self._wrapped = wrapped
        self._api = api

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._wrapped, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        api = self._api

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            outcome = "ok"
            try:
                return attribute(*args, **kwargs)
            except Exception as exc:
                outcome = type(exc).__name__
                raise
            finally:
                API_CALL_SECONDS.labels(api, name).observe(time.perf_counter() - started)
                API_CALLS.labels(api, name, outcome).inc()

        return timed

    @property
    def wrapped(self) -> Any:
        return self._wrapped


def instrumented(gateway: Any, *, api: str) -> Any:
    """`gateway` with every public method counted and timed (idempotent)."""
    if isinstance(gateway, _Instrumented):
        return gateway
    return _Instrumented(gateway, api)


SIGN_INS = Counter(
    "marketplace_sign_ins",
    "Console sign-in attempts (form or HTTP Basic), by outcome: ok, refused, throttled.",
    ["method", "outcome"],
)
