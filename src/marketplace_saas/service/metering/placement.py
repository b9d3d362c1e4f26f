"""Which window a usage record joins, and whether its metric is billed there.

A record joins the window (entitlement, hour, plan) holding its time (`domain.usage.Timeline`).
A record whose window was already reported is late: with `USAGE_LATE_POLICY=carry` (default) it
joins the entitlement's first window not yet reported, keeping its own time; with `reject` it is
refused. Its metric must be one the window's plan reports (the usage catalog).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from marketplace_saas.adapters.usage_catalog import UsageCatalog
from marketplace_saas.domain.metering import MeteredEntitlement
from marketplace_saas.domain.usage import UsageError, Window


class Record(Protocol):
    @property
    def entitlement(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def time(self) -> datetime: ...


class Placement:
    """Decides the window of each record, from entitlements and ledger state read once per batch."""

    def __init__(
        self,
        entitlements: dict[str, MeteredEntitlement],
        reported_until: dict[str, datetime],
        catalog: UsageCatalog,
        late_policy: str,
    ) -> None:
        self._entitlements = entitlements
        self._reported_until = reported_until
        self._catalog = catalog
        self._late_policy = late_policy
        # (product, external name, plan, metric) -> None (known) or the refusal's reason
        self._metric_checks: dict[tuple[str | None, str | None, str, str], str | None] = {}

    def window(self, record: Record) -> Window:
        entitlement = self._entitlements.get(record.entitlement)
        if entitlement is None:
            raise UsageError(f"unknown entitlement {record.entitlement!r}")
        if not entitlement.usage_reporting_id:
            raise UsageError(
                "entitlement is not usage-billed (it has no usageReportingId; "
                "Google may add one later: retry after the next sync)"
            )
        timeline = entitlement.timeline
        if timeline is None or not timeline.is_active_at(record.time):
            raise UsageError(f"entitlement was not active at {record.time.isoformat()}")
        window = timeline.window_at(record.time)
        self._check_metric(entitlement, window.plan, record.metric)
        until = self._reported_until.get(entitlement.id)
        if until is None or window.start >= until:
            return window
        if self._late_policy == "reject":
            raise UsageError(
                f"late: the window starting {window.start.isoformat()} was already reported"
            )
        if not timeline.is_active_at(until):
            raise UsageError(
                "late: the window was already reported and the entitlement has no later window "
                "(it was cancelled)"
            )
        carried = timeline.window_at(until)
        if carried.plan != window.plan:
            self._check_metric(entitlement, carried.plan, record.metric)
        return carried

    def _check_metric(self, entitlement: MeteredEntitlement, plan: str, metric: str) -> None:
        key = (entitlement.product, entitlement.product_external_name, plan, metric)
        if key not in self._metric_checks:
            try:
                self._check_metric_in_catalog(entitlement, plan, metric)
                self._metric_checks[key] = None
            except UsageError as exc:
                self._metric_checks[key] = str(exc)
        reason = self._metric_checks[key]
        if reason is not None:
            raise UsageError(reason)

    def _check_metric_in_catalog(
        self, entitlement: MeteredEntitlement, plan: str, metric: str
    ) -> None:
        product = self._catalog.product(entitlement.product, entitlement.product_external_name)
        metrics = self._catalog.plan_metrics(product, plan)
        if not metrics:
            where = "is not in the usage catalog" if product is None else "has no metrics"
            raise UsageError(
                f"entitlement is not usage-billed: plan {plan!r} of product "
                f"{entitlement.product!r} {where} ({self._catalog.source})"
            )
        if metric not in metrics:
            raise UsageError(
                f"unknown metric {metric!r} for plan {plan!r} (known: {', '.join(sorted(metrics))})"
            )
