"""What metering's use cases and its store exchange: entitlements as metering sees them, records
to insert, the ledger's state and its rows. Pure data; the rules of windows are `domain.usage`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from marketplace_saas.domain.usage import Timeline

UNFINISHED = ("pending", "sent")  # ledger rows still to send


@dataclass(frozen=True)
class MeteredEntitlement:
    """What metering needs of one entitlement: its record and its reporting timeline."""

    id: str
    product: str | None
    product_external_name: str | None
    plan: str | None
    usage_reporting_id: str | None
    service_enabled: bool
    service_suspended_reason: str | None
    timeline: Timeline | None  # None: never active


class NewRecord(NamedTuple):
    """A usage record to store (the columns of `usage_records`, in the store's order)."""

    record_id: str
    entitlement_id: str
    metric: str
    value: Decimal
    time: datetime  # aware, as every time here
    window_start: datetime
    labels: dict[str, str]
    received_at: datetime


@dataclass(frozen=True)
class LedgerState:
    """Per entitlement: where its ledger ends, and the fractions carried out of that window."""

    until: dict[str, datetime]
    carry: dict[str, dict[str, Decimal]]


@dataclass(frozen=True)
class WindowKey:
    """A window to close: its operationId, and the records it holds (entitlement, hour start)."""

    operation_id: str
    entitlement_id: str
    window_start: datetime


@dataclass
class WindowUsage:
    """What the records of one window add up to: provider metric -> sum; the label sets seen."""

    sums: dict[str, Decimal] = field(default_factory=dict)
    label_sets: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ReportRow:
    """One row of the report ledger (`usage_reports`): a window, its values, where it stands.

    `metric_values` maps the Service Control metric name (`service/metric_id`) to
    `{metric, type, sum, value, carry_out?}`; an entry without `type` (`unreportable`) is kept
    for the record and never sent.
    """

    operation_id: str
    entitlement_id: str
    consumer_id: str | None
    plan: str
    window_start: datetime
    window_end: datetime
    metric_values: dict[str, Any]
    user_labels: dict[str, str] | None
    status: str
    attempts: int = 0
    id: int = 0  # 0 until stored
    error: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None

    def reported(self) -> dict[str, dict[str, Any]]:
        """The entries that are sent: Service Control metric name -> entry."""
        return {k: v for k, v in self.metric_values.items() if isinstance(v, dict) and "type" in v}

    @property
    def service(self) -> str:
        """The Service Control service of the window (the prefix of its metric names)."""
        values = self.metric_values
        name = next(k for k, v in values.items() if isinstance(v, dict) and "type" in v)
        return name.rsplit("/", 1)[0]


def shard_of(entitlement_id: str, shards: int) -> int:
    """Which of the reporter's `shards` an entitlement's windows belong to (the same in every
    process: N reporters split the work by claiming shards)."""
    digest = hashlib.blake2b(entitlement_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % shards
