"""Read models of what happens to the records: approvals waiting, the inbox, the report ledger,
and hourly usage (the chart). Plain dicts; see `admin_queries` for pagination and indexes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import (
    Account,
    Customer,
    Entitlement,
    InboxMessage,
    UsageRecord,
    UsageReport,
)
from marketplace_saas.domain.entitlements import ACTIVATION_REQUESTED, PENDING_PLAN_CHANGE_APPROVAL
from marketplace_saas.service.admin_queries import (
    Page,
    account_dict,
    entitlement_dict,
    make_page,
    page_limit,
    version_token,
)


def hourly_usage(
    session: Session, entitlement_id: str, *, start: datetime, end: datetime
) -> dict[str, dict[datetime, dict[str, Decimal]]]:
    """Per metric (the provider's name) and hour: `ingested` records and `reported` (accepted)."""
    series: dict[str, dict[datetime, dict[str, Decimal]]] = defaultdict(dict)
    ingested = session.execute(
        sa.select(UsageRecord.metric, UsageRecord.window_start, sa.func.sum(UsageRecord.value))
        .where(
            UsageRecord.entitlement_id == entitlement_id,
            UsageRecord.window_start >= start,
            UsageRecord.window_start < end,
        )
        .group_by(UsageRecord.metric, UsageRecord.window_start)
    )
    for metric, hour, total in ingested:
        series[metric].setdefault(hour, {})["ingested"] = Decimal(total or 0)
    reports = session.scalars(
        sa.select(UsageReport).where(
            UsageReport.entitlement_id == entitlement_id,
            UsageReport.window_start >= start,
            UsageReport.window_start < end,
            UsageReport.status == "accepted",
        )
    )
    for report in reports:
        for entry in (report.metric_values or {}).values():
            if not isinstance(entry, dict) or "type" not in entry or "metric" not in entry:
                continue
            try:
                value = Decimal(str(entry.get("value", "0")))
            except InvalidOperation:
                continue
            cell = series[str(entry["metric"])].setdefault(report.window_start, {})
            cell["reported"] = cell.get("reported", Decimal(0)) + value
    return dict(series)


def approvals_queue(session: Session, *, limit: int = 100) -> dict[str, list[dict[str, Any]]]:
    """What waits for a provider decision: accounts, entitlements, plan changes (oldest first)."""
    limit = page_limit(limit)
    accounts = session.execute(
        sa.select(Account, Customer)
        .outerjoin(Customer, Customer.id == Account.customer_id)
        .where(Account.signup_approval == "PENDING", Account.deleted_at.is_(None))
        .order_by(Account.created_at, Account.id)
        .limit(limit)
    )

    def waiting(state: str) -> list[dict[str, Any]]:
        rows = session.scalars(
            sa.select(Entitlement)
            .where(Entitlement.state == state)
            .order_by(Entitlement.updated_at, Entitlement.id)
            .limit(limit)
        )
        return [{**entitlement_dict(r), "version": version_token(r)} for r in rows]

    return {
        "accounts": [{**account_dict(a, c), "version": version_token(a)} for a, c in accounts],
        "entitlements": waiting(ACTIVATION_REQUESTED),
        "plan_changes": waiting(PENDING_PLAN_CHANGE_APPROVAL),
    }


def _inbox_dict(row: InboxMessage, *, full: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "subject_kind": row.subject_kind,
        "subject_id": row.subject_id,
        "source": row.source,
        "status": row.status,
        "attempts": row.attempts,
        "deliveries": row.deliveries,
        "received_at": row.received_at,
        "processed_at": row.processed_at,
        "last_error": row.last_error,
    }
    if full:
        item["payload"] = row.payload
        item["traceback"] = row.traceback
        item["message_id"] = row.message_id
    return item


def list_notifications(
    session: Session, *, status: str | None = None, before: int | None = None, limit: int = 50
) -> Page:
    """The inbox, newest first; `before` = the last id of the previous page."""
    limit = page_limit(limit)
    statement = sa.select(InboxMessage).order_by(InboxMessage.id.desc()).limit(limit + 1)
    if status:
        statement = statement.where(InboxMessage.status == status)
    if before is not None:
        statement = statement.where(InboxMessage.id < before)
    return make_page([_inbox_dict(r) for r in session.scalars(statement)], limit, "id")


def notification_detail(session: Session, event_id: str) -> dict[str, Any] | None:
    row = session.scalars(sa.select(InboxMessage).where(InboxMessage.event_id == event_id)).first()
    return _inbox_dict(row, full=True) if row else None


def _report_dict(row: UsageReport) -> dict[str, Any]:
    return {
        "id": row.id,
        "operation_id": row.operation_id,
        "entitlement_id": row.entitlement_id,
        "consumer_id": row.consumer_id,
        "plan": row.plan,
        "window_start": row.window_start,
        "window_end": row.window_end,
        "metric_values": dict(row.metric_values or {}),
        "status": row.status,
        "attempts": row.attempts,
        "error": row.error,
        "created_at": row.created_at,
        "sent_at": row.sent_at,
        "completed_at": row.completed_at,
    }


def list_reports(
    session: Session,
    *,
    status: str | None = None,
    entitlement: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page:
    """The report ledger, newest first, filtered by status and entitlement."""
    limit = page_limit(limit)
    statement = sa.select(UsageReport).order_by(UsageReport.id.desc()).limit(limit + 1)
    if status:
        statement = statement.where(UsageReport.status == status)
    if entitlement:
        statement = statement.where(UsageReport.entitlement_id == entitlement)
    if before is not None:
        statement = statement.where(UsageReport.id < before)
    return make_page([_report_dict(r) for r in session.scalars(statement)], limit, "id")


def report_detail(session: Session, operation_id: str) -> dict[str, Any] | None:
    row = session.scalars(
        sa.select(UsageReport).where(UsageReport.operation_id == operation_id)
    ).first()
    return _report_dict(row) if row else None
