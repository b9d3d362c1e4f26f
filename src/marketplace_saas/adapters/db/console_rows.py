"""Our rows as the console shows them: plain dicts with the columns' names."""

from __future__ import annotations

from typing import Any

from marketplace_saas.adapters.db.models import (
    Account,
    AuditLog,
    Customer,
    Entitlement,
    InboxMessage,
    UsageReport,
)
from marketplace_saas.domain.offers import OfferTerms


def customer_dict(customer: Customer | None) -> dict[str, Any] | None:
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
        "customer": customer_dict(customer),
    }


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
        "offer_terms": OfferTerms.of(row.raw, "DELETED" if row.deleted_at else row.state).to_dict(),
    }


def audit_dict(row: AuditLog) -> dict[str, Any]:
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


def inbox_dict(row: InboxMessage, *, full: bool = False) -> dict[str, Any]:
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


def report_dict(row: UsageReport) -> dict[str, Any]:
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
