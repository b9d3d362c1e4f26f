"""Read models for the operator console and its JSON API: plain dicts, one short query each.

Every list is keyset-paginated (`after` = the last id of the previous page) so that page N costs
what page 1 costs. Counts use the indexes of the schema: entitlements by state read only
`ix_entitlements_state_product_plan`; notifications of the last hour read
`ix_inbox_status_received_at` once per status; the timeline of an entitlement reads
`inbox.subject_id` and `ix_audit_log_entitlement_id_at`; the usage chart reads
`ix_usage_records_window` and `ix_usage_reports_entitlement_id_window_start`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import (
    Account,
    AuditLog,
    Customer,
    Entitlement,
    HookOutbox,
    InboxMessage,
    PlanHistory,
    UsageReport,
)
from marketplace_saas.domain.entitlements import ACTIVATION_REQUESTED, PENDING_PLAN_CHANGE_APPROVAL

INBOX_STATUSES = ("received", "processed", "ignored", "invalid", "retrying", "parked")
FAILED_INBOX = ("invalid", "retrying", "parked")
REPORT_STATUSES = ("pending", "sent", "accepted", "rejected", "skipped")
MAX_PAGE = 200
TIMELINE_LIMIT = 300


@dataclass
class Page:
    items: list[dict[str, Any]] = field(default_factory=list)
    next_after: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_after": self.next_after}


def page_limit(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def make_page(items: list[dict[str, Any]], limit: int, key: str) -> Page:
    more = len(items) > limit
    items = items[:limit]
    return Page(items, str(items[-1][key]) if more and items else None)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- overview -------------------------------------------------------------------------------------


def overview(session: Session, now: datetime) -> dict[str, Any]:
    """Counts for the front page: states, what waits, recent notifications, usage, hooks."""
    by_state: dict[str, int] = {
        str(state): int(count)
        for state, count in session.execute(
            sa.select(Entitlement.state, sa.func.count()).group_by(Entitlement.state)
        )
    }
    by_approval = {
        (approval or "NONE"): count
        for approval, count in session.execute(
            sa.select(Account.signup_approval, sa.func.count())
            .where(Account.deleted_at.is_(None))
            .group_by(Account.signup_approval)
        )
    }
    hour_ago = now - timedelta(hours=1)
    recent = {
        status: session.scalar(
            sa.select(sa.func.count())
            .select_from(InboxMessage)
            .where(InboxMessage.status == status, InboxMessage.received_at >= hour_ago)
        )
        or 0
        for status in INBOX_STATUSES
    }
    day_ago = now - timedelta(hours=24)
    reports = {
        status: session.scalar(
            sa.select(sa.func.count())
            .select_from(UsageReport)
            .where(UsageReport.status == status, UsageReport.window_end >= day_ago)
        )
        or 0
        for status in ("accepted", "rejected")
    }
    count = sa.select(sa.func.count())
    return {
        "now": now,
        "customers": session.scalar(count.select_from(Customer)) or 0,
        "accounts_by_approval": by_approval,
        "entitlements_by_state": dict(sorted(by_state.items())),
        "entitlements_total": sum(by_state.values()),
        "waiting": {
            "accounts": by_approval.get("PENDING", 0),
            "entitlements": by_state.get(ACTIVATION_REQUESTED, 0),
            "plan_changes": by_state.get(PENDING_PLAN_CHANGE_APPROVAL, 0),
        },
        "notifications_last_hour": {
            "total": sum(recent.values()),
            "failed": sum(recent[s] for s in FAILED_INBOX),
            "by_status": recent,
        },
        "parked_total": session.scalar(
            count.select_from(InboxMessage).where(InboxMessage.status == "parked")
        )
        or 0,
        "usage_last_24h": {"accepted": reports["accepted"], "rejected": reports["rejected"]},
        "rejected_reports_total": session.scalar(
            count.select_from(UsageReport).where(UsageReport.status == "rejected")
        )
        or 0,
        "dead_hooks": session.scalar(
            count.select_from(HookOutbox).where(HookOutbox.status == "dead")
        )
        or 0,
    }


# -- customers and accounts -----------------------------------------------------------------------


def _customer_dict(customer: Customer | None) -> dict[str, Any] | None:
    if customer is None:
        return None
    return {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "company": customer.company,
        "signup_data": dict(customer.signup_data or {}),
        "created_at": customer.created_at,
        "erased_at": customer.erased_at,
    }


def account_dict(account: Account, customer: Customer | None) -> dict[str, Any]:
    return {
        "id": account.id,
        "state": account.state,
        "signup_approval": account.signup_approval,
        "approvals": dict(account.approvals or {}),
        "signed_up_at": account.signed_up_at,
        "created_at": account.created_at,
        "updated_at": account.updated_at,
        "deleted_at": account.deleted_at,
        "customer": _customer_dict(customer),
    }


def list_accounts(
    session: Session, *, q: str | None = None, after: str | None = None, limit: int = 50
) -> Page:
    """Accounts with their customer, by id; `q` matches the id, name, email or company."""
    limit = page_limit(limit)
    statement = (
        sa.select(Account, Customer)
        .outerjoin(Customer, Customer.id == Account.customer_id)
        .order_by(Account.id)
        .limit(limit + 1)
    )
    if q:
        pattern = _like(q.strip())
        statement = statement.where(
            sa.or_(
                Account.id.like(pattern, escape="\\"),
                Customer.name.ilike(pattern, escape="\\"),
                Customer.email.ilike(pattern, escape="\\"),
                Customer.company.ilike(pattern, escape="\\"),
            )
        )
    if after:
        statement = statement.where(Account.id > after)
    rows = [account_dict(account, customer) for account, customer in session.execute(statement)]
    return make_page(rows, limit, "id")


def account_detail(session: Session, account_id: str) -> dict[str, Any] | None:
    """One account: customer and sign-up data, approvals, entitlements and its audit trail."""
    account = session.get(Account, account_id)
    if account is None:
        return None
    customer = session.get(Customer, account.customer_id) if account.customer_id else None
    entitlements = session.scalars(
        sa.select(Entitlement).where(Entitlement.account_id == account_id).order_by(Entitlement.id)
    )
    audit = session.scalars(
        sa.select(AuditLog)
        .where(AuditLog.account_id == account_id)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(TIMELINE_LIMIT)
    )
    return {
        **account_dict(account, customer),
        "version": version_token(account),
        "entitlements": [entitlement_dict(e) for e in entitlements],
        "audit": [_audit_dict(a) for a in audit],
    }


# -- entitlements ---------------------------------------------------------------------------------


def entitlement_dict(row: Entitlement) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "product": row.product,
        "plan": row.plan,
        "new_pending_plan": row.new_pending_plan,
        "state": row.state,
        "offer": row.offer,
        "usage_reporting_id": row.usage_reporting_id,
        "service_enabled": row.service_enabled,
        "service_plan": row.service_plan,
        "service_suspended_reason": row.service_suspended_reason,
        "message_to_user": row.message_to_user,
        "cancellation_reason": row.cancellation_reason,
        "active_since": row.active_since,
        "cancelled_at": row.cancelled_at,
        "deleted_at": row.deleted_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "google_update_time": row.google_update_time,
    }


def version_token(row: Entitlement | Account) -> str:
    """What a form carries to detect a stale page: the state and when our record last changed."""
    state = row.state if isinstance(row, Entitlement) else row.signup_approval
    return f"{state}|{row.updated_at.isoformat()}"


def list_entitlements(
    session: Session,
    *,
    state: str | None = None,
    product: str | None = None,
    plan: str | None = None,
    account: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> Page:
    """Entitlements by id, filtered by state, product, plan and account."""
    limit = page_limit(limit)
    statement = sa.select(Entitlement).order_by(Entitlement.id).limit(limit + 1)
    for column, value in (
        (Entitlement.state, state),
        (Entitlement.product, product),
        (Entitlement.plan, plan),
        (Entitlement.account_id, account),
    ):
        if value:
            statement = statement.where(column == value)
    if after:
        statement = statement.where(Entitlement.id > after)
    rows = [entitlement_dict(row) for row in session.scalars(statement)]
    names = _customer_names(session, {row["account_id"] for row in rows})
    for row in rows:
        row["customer_name"] = names.get(row["account_id"])
    return make_page(rows, limit, "id")


def _customer_names(session: Session, account_ids: set[str]) -> dict[str, str | None]:
    if not account_ids:
        return {}
    statement = (
        sa.select(Account.id, Customer.company, Customer.name)
        .join(Customer, Customer.id == Account.customer_id)
        .where(Account.id.in_(account_ids))
    )
    return {account_id: company or name for account_id, company, name in session.execute(statement)}


def filter_choices(session: Session) -> dict[str, list[str]]:
    """The states, products and plans present, for the list's filter menus."""
    rows = session.execute(
        sa.select(Entitlement.state, Entitlement.product, Entitlement.plan).distinct()
    ).all()
    return {
        "states": sorted({r.state for r in rows if r.state}),
        "products": sorted({r.product for r in rows if r.product}),
        "plans": sorted({r.plan for r in rows if r.plan}),
    }


def _audit_dict(row: AuditLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "kind": row.kind,
        "action": row.action,
        "actor": row.actor,
        "account_id": row.account_id,
        "entitlement_id": row.entitlement_id,
        "event_id": row.event_id,
        "outcome": row.outcome,
        "details": dict(row.details or {}),
    }


def entitlement_detail(session: Session, entitlement_id: str) -> dict[str, Any] | None:
    """One entitlement: its account, plan history, and a timeline of notifications and actions."""
    row = session.get(Entitlement, entitlement_id)
    if row is None:
        return None
    account = session.get(Account, row.account_id)
    customer = (
        session.get(Customer, account.customer_id) if account and account.customer_id else None
    )
    history = session.scalars(
        sa.select(PlanHistory)
        .where(PlanHistory.entitlement_id == entitlement_id)
        .order_by(PlanHistory.effective_at, PlanHistory.id)
    )
    timeline: list[dict[str, Any]] = []
    for message in session.scalars(
        sa.select(InboxMessage)
        .where(InboxMessage.subject_id == entitlement_id)
        .order_by(InboxMessage.id.desc())
        .limit(TIMELINE_LIMIT)
    ):
        timeline.append(
            {
                "at": message.received_at,
                "kind": "notification",
                "title": message.event_type or "(unreadable)",
                "status": message.status,
                "event_id": message.event_id,
                "actor": message.source,
                "error": message.last_error,
            }
        )
    for audit in session.scalars(
        sa.select(AuditLog)
        .where(AuditLog.entitlement_id == entitlement_id)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(TIMELINE_LIMIT)
    ):
        timeline.append(
            {
                "at": audit.at,
                "kind": audit.kind,
                "title": audit.action,
                "status": audit.outcome,
                "event_id": audit.event_id,
                "actor": audit.actor,
                "error": None,
                "details": dict(audit.details or {}),
            }
        )
    timeline.sort(key=lambda item: item["at"], reverse=True)
    return {
        **entitlement_dict(row),
        "version": version_token(row),
        "account": account_dict(account, customer) if account else None,
        "plan_history": [
            {
                "plan": h.plan,
                "previous_plan": h.previous_plan,
                "effective_at": h.effective_at,
                "event_id": h.event_id,
            }
            for h in history
        ],
        "timeline": timeline,
    }
