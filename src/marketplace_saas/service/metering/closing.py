"""Closing due windows into the report ledger: step 1 of a report run.

Every window that ended before the horizon and is not in the ledger yet is closed, per
entitlement in time order, in one transaction: its records are stamped with the window's
operationId (`domain.usage.operation_id`) and summed by that stamp, and a ledger row is written
as `pending` (or `skipped`: nothing to report). Google is called only after that commit.

int64 metrics report the whole units of a window; the fraction is carried into the entitlement's
next window (by the provider's metric name) and the last window rounds half up. A record that
reached an already-closed window (written while the reporter closed it) is carried into the
entitlement's first open window first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from marketplace_saas.adapters.usage_catalog import MetricSpec, UsageCatalog
from marketplace_saas.domain.metering import (
    LedgerState,
    MeteredEntitlement,
    ReportRow,
    WindowKey,
)
from marketplace_saas.domain.usage import Window, operation_id, split_integer, user_labels
from marketplace_saas.service.metering.ports import UsageRepository

log = structlog.get_logger(__name__)


@dataclass
class NewWindow:
    entitlement: MeteredEntitlement
    window: Window
    operation_id: str
    metrics: dict[str, MetricSpec]
    service: str | None
    final: bool
    # Filled by the aggregation: provider metric -> sum; and the label sets seen.
    sums: dict[str, Decimal] = field(default_factory=dict)
    label_sets: list[dict[str, str]] = field(default_factory=list)

    @property
    def key(self) -> WindowKey:
        return WindowKey(self.operation_id, self.entitlement.id, self.window.start)


def due_windows(
    entitlements: Iterable[MeteredEntitlement],
    state: LedgerState,
    catalog: UsageCatalog,
    horizon: datetime,
) -> list[NewWindow]:
    """Every window ended before `horizon` and not yet in the ledger, per entitlement in order."""
    out: list[NewWindow] = []
    for entitlement in entitlements:
        timeline = entitlement.timeline
        if timeline is None or not entitlement.usage_reporting_id:
            continue
        product = catalog.product(entitlement.product, entitlement.product_external_name)
        since = state.until.get(entitlement.id, timeline.active_since)
        for window in timeline.windows(since, horizon):
            metrics = catalog.plan_metrics(product, window.plan)
            out.append(
                NewWindow(
                    entitlement=entitlement,
                    window=window,
                    operation_id=operation_id(entitlement.id, window.start, window.plan),
                    metrics=metrics,
                    service=product.service if product else None,
                    final=window.end == timeline.cancelled_at,
                )
            )
    return out


def stamp_and_sum(usage: UsageRepository, windows: Sequence[NewWindow]) -> None:
    """Stamp each window's unreported records with its operationId and fill in their sums."""
    found = usage.stamp_and_sum([w.key for w in windows])
    for w in windows:
        usage_of = found.get(w.operation_id)
        if usage_of is not None:
            w.sums.update(usage_of.sums)
            w.label_sets.extend(usage_of.label_sets)


def preview_sums(usage: UsageRepository, windows: Sequence[NewWindow]) -> None:
    """What `stamp_and_sum` would find, changing nothing (for `--dry-run`)."""
    found = usage.preview_sums({w.entitlement.id for w in windows})
    for w in windows:
        w.sums.update(found.get((w.entitlement.id, w.window.start), {}))


def ledger_rows(
    windows: Sequence[NewWindow], state: LedgerState, *, report_zero: bool, now: datetime
) -> list[ReportRow]:
    """The ledger rows of `windows` (in order per entitlement), carrying fractions."""
    carry = {k: dict(v) for k, v in state.carry.items()}
    rows: list[ReportRow] = []
    for w in windows:
        carried = carry.pop(w.entitlement.id, {})
        values: dict[str, Any] = {}
        for name, spec in w.metrics.items():
            total = w.sums.get(name, Decimal(0)) + carried.pop(name, Decimal(0))
            entry: dict[str, Any] = {"metric": name, "type": spec.value_type, "sum": str(total)}
            if spec.value_type == "int64":
                whole, remainder = split_integer(total, final=w.final)
                entry["value"] = str(whole)
                if remainder:
                    entry["carry_out"] = str(remainder)
                    carry.setdefault(w.entitlement.id, {})[name] = remainder
            else:
                entry["value"] = str(total)
            values[f"{w.service}/{spec.metric_id}"] = entry
        stray = {m: str(v) for m, v in w.sums.items() if m not in w.metrics}
        if stray or any(v for v in carried.values()):
            # Usage under a metric this window's plan does not report (carried across a plan
            # change): kept visible in the ledger, never sent.
            values["unreportable"] = {**stray, **{m: str(v) for m, v in carried.items() if v}}
            log.error(
                "usage.unreportable",
                entitlement_id=w.entitlement.id,
                metrics=values["unreportable"],
            )
        zero = all(
            Decimal(e["value"]) == 0 for e in values.values() if isinstance(e, dict) and "type" in e
        )
        nothing = not w.metrics or (not report_zero and zero)
        rows.append(
            ReportRow(
                operation_id=w.operation_id,
                entitlement_id=w.entitlement.id,
                consumer_id=w.entitlement.usage_reporting_id,
                plan=w.window.plan,
                window_start=w.window.start,
                window_end=w.window.end,
                metric_values=values,
                user_labels=user_labels(w.label_sets),
                status="skipped" if nothing else "pending",
                attempts=0,
                created_at=now,
                completed_at=now if nothing else None,
            )
        )
    return rows


def carry_stray_records(
    usage: UsageRepository,
    entitlements: dict[str, MeteredEntitlement],
    state: LedgerState,
    owned: Callable[[str], bool] | None = None,
) -> tuple[int, int]:
    """Move unstamped records of already-reported windows into the first open window.

    Ingestion does this itself; a record written while the reporter closed its window can still
    end up here. Returns (moved, stranded): stranded records have no open window left. With
    `owned`, only the records of the entitlements it accepts (the run's claimed shard).
    """
    moves: dict[datetime, list[int]] = defaultdict(list)
    stranded = 0
    for record_id, entitlement_id in usage.stray_records():
        if owned is not None and not owned(entitlement_id):
            continue
        entitlement = entitlements.get(entitlement_id)
        until = state.until.get(entitlement_id)
        timeline = entitlement.timeline if entitlement else None
        if timeline is None or until is None or not timeline.is_active_at(until):
            stranded += 1
            log.error("usage.stranded_record", entitlement_id=entitlement_id, id=record_id)
            continue
        moves[timeline.window_at(until).start].append(record_id)
    usage.move_records(moves)
    return sum(len(ids) for ids in moves.values()), stranded
