"""The console's view of our records: the overview, accounts, entitlements and their timeline.

with container.console() as reads:
    overview(reads, now); list_accounts(reads, q=...); entitlement_detail(reads, id)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from marketplace_saas.domain.entitlements import ACTIVATION_REQUESTED, PENDING_PLAN_CHANGE_APPROVAL
from marketplace_saas.domain.views import (
    FAILED_INBOX,
    INBOX_STATUSES,
    MAX_PAGE,
    REPORT_STATUSES,
    TIMELINE_LIMIT,
    Page,
    make_page,
    page_limit,
    version_token,
)
from marketplace_saas.service.console.reads import ConsoleReads, Row

__all__ = [
    "INBOX_STATUSES",
    "MAX_PAGE",
    "REPORT_STATUSES",
    "Page",
    "account_detail",
    "account_version",
    "entitlement_detail",
    "entitlement_version",
    "filter_choices",
    "list_accounts",
    "list_entitlements",
    "overview",
]


def overview(reads: ConsoleReads, now: datetime) -> dict[str, Any]:
    """Counts for the front page: states, what waits, recent notifications, usage, hooks."""
    counts = reads.counts(
        inbox_since=now - timedelta(hours=1), reports_since=now - timedelta(hours=24)
    )
    by_state = counts.entitlements_by_state
    by_approval = counts.accounts_by_approval
    recent = counts.inbox_since
    return {
        "now": now,
        "customers": counts.customers,
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
        "parked_total": counts.parked,
        "usage_last_24h": {
            "accepted": counts.reports_since["accepted"],
            "rejected": counts.reports_since["rejected"],
        },
        "rejected_reports_total": counts.rejected_reports,
        "dead_hooks": counts.dead_hooks,
    }


def account_version(row: Row) -> str:
    return version_token(row["signup_approval"], row["updated_at"])


def entitlement_version(row: Row) -> str:
    return version_token(row["state"], row["updated_at"])


def list_accounts(
    reads: ConsoleReads, *, q: str | None = None, after: str | None = None, limit: int = 50
) -> Page:
    """Accounts with their customer, by id; `q` matches the id, name, email or company."""
    limit = page_limit(limit)
    return make_page(reads.accounts(q=q, after=after, limit=limit + 1), limit, "id")


def account_detail(reads: ConsoleReads, account_id: str) -> dict[str, Any] | None:
    """One account: customer and sign-up data, approvals, entitlements and its audit trail."""
    account = reads.account(account_id)
    if account is None:
        return None
    return {
        **account,
        "version": account_version(account),
        "entitlements": reads.entitlements_of_account(account_id),
        "audit": reads.audit(account_id=account_id, limit=TIMELINE_LIMIT),
    }


def list_entitlements(
    reads: ConsoleReads,
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
    rows = reads.entitlements(
        state=state, product=product, plan=plan, account=account, after=after, limit=limit + 1
    )
    return make_page(rows, limit, "id")


def filter_choices(reads: ConsoleReads) -> dict[str, list[str]]:
    """The states, products and plans present, for the list's filter menus."""
    return reads.filter_choices()


def entitlement_detail(reads: ConsoleReads, entitlement_id: str) -> dict[str, Any] | None:
    """One entitlement: its account, plan history, and a timeline of notifications and actions."""
    row = reads.entitlement(entitlement_id)
    if row is None:
        return None
    account = reads.account(row["account_id"])
    timeline: list[dict[str, Any]] = [
        {
            "at": message["received_at"],
            "kind": "notification",
            "title": message["event_type"] or "(unreadable)",
            "status": message["status"],
            "event_id": message["event_id"],
            "actor": message["source"],
            "error": message["last_error"],
        }
        for message in reads.notifications(subject_id=entitlement_id, limit=TIMELINE_LIMIT)
    ]
    timeline += [
        {
            "at": audit["at"],
            "kind": audit["kind"],
            "title": audit["action"],
            "status": audit["outcome"],
            "event_id": audit["event_id"],
            "actor": audit["actor"],
            "error": None,
            "details": audit["details"],
        }
        for audit in reads.audit(entitlement_id=entitlement_id, limit=TIMELINE_LIMIT)
    ]
    timeline.sort(key=lambda item: item["at"], reverse=True)
    return {
        **row,
        "version": entitlement_version(row),
        "account": account,
        "plan_history": reads.plan_history(entitlement_id),
        "timeline": timeline,
    }


def current_version(reads: ConsoleReads, kind: str, resource_id: str) -> str | None:
    """The version token of our account or entitlement now; None when we have no such record."""
    if kind == "account":
        account = reads.account(resource_id)
        return account_version(account) if account is not None else None
    entitlement = reads.entitlement(resource_id)
    return entitlement_version(entitlement) if entitlement is not None else None
