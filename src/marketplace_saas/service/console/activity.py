"""What happens to the records, as the console shows it: approvals waiting, the inbox, the report
ledger, and hourly usage (the chart). Plain dicts; pages as in `domain.views`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from marketplace_saas.domain.entitlements import ACTIVATION_REQUESTED, PENDING_PLAN_CHANGE_APPROVAL
from marketplace_saas.domain.views import Page, make_page, page_limit
from marketplace_saas.service.console.reads import ConsoleReads
from marketplace_saas.service.console.records import account_version, entitlement_version


def hourly_usage(
    reads: ConsoleReads, entitlement_id: str, *, start: datetime, end: datetime
) -> dict[str, dict[datetime, dict[str, Decimal]]]:
    """Per metric (the provider's name) and hour: `ingested` records and `reported` (accepted)."""
    series: dict[str, dict[datetime, dict[str, Decimal]]] = defaultdict(dict)
    for metric, hour, total in reads.ingested_by_hour(entitlement_id, start=start, end=end):
        series[metric].setdefault(hour, {})["ingested"] = total
    for window_start, metric_values in reads.accepted_windows(entitlement_id, start=start, end=end):
        for entry in metric_values.values():
            if not isinstance(entry, dict) or "type" not in entry or "metric" not in entry:
                continue
            try:
                value = Decimal(str(entry.get("value", "0")))
            except InvalidOperation:
                continue
            cell = series[str(entry["metric"])].setdefault(window_start, {})
            cell["reported"] = cell.get("reported", Decimal(0)) + value
    return dict(series)


def approvals_queue(reads: ConsoleReads, *, limit: int = 100) -> dict[str, list[dict[str, Any]]]:
    """What waits for a provider decision: accounts, entitlements, plan changes (oldest first)."""
    limit = page_limit(limit)

    def waiting(state: str) -> list[dict[str, Any]]:
        rows = reads.entitlements_in_state(state, limit=limit)
        return [{**r, "version": entitlement_version(r)} for r in rows]

    return {
        "accounts": [
            {**a, "version": account_version(a)} for a in reads.pending_accounts(limit=limit)
        ],
        "entitlements": waiting(ACTIVATION_REQUESTED),
        "plan_changes": waiting(PENDING_PLAN_CHANGE_APPROVAL),
    }


def list_notifications(
    reads: ConsoleReads, *, status: str | None = None, before: int | None = None, limit: int = 50
) -> Page:
    """The inbox, newest first; `before` = the last id of the previous page."""
    limit = page_limit(limit)
    return make_page(
        reads.notifications(status=status, before=before, limit=limit + 1), limit, "id"
    )


def notification_detail(reads: ConsoleReads, event_id: str) -> dict[str, Any] | None:
    return reads.notification(event_id)


def list_reports(
    reads: ConsoleReads,
    *,
    status: str | None = None,
    entitlement: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page:
    """The report ledger, newest first, filtered by status and entitlement."""
    limit = page_limit(limit)
    rows = reads.reports(status=status, entitlement=entitlement, before=before, limit=limit + 1)
    return make_page(rows, limit, "id")


def report_detail(reads: ConsoleReads, operation_id: str) -> dict[str, Any] | None:
    return reads.report(operation_id)
