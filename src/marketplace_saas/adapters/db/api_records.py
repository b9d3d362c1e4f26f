"""Our records as the CLI shows them (`container.console`): the Procurement API's field names,
plus ours.

An entitlement is shown the way `GET providers/{p}/entitlements/{id}` answers (from the last
copy we fetched, overlaid with what we applied), followed by our own fields: `serviceEnabled`,
`servicePlan`, `customerId`, ...
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import Account, Entitlement, InboxMessage
from marketplace_saas.domain.offers import OfferTerms
from marketplace_saas.domain.time import optional_rfc3339 as rfc3339


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "")}


def account_record(account: Account) -> dict[str, Any]:
    approvals = [
        {"name": name, **(value if isinstance(value, dict) else {"state": value})}
        for name, value in sorted((account.approvals or {}).items())
    ]
    api = _compact(
        {
            "name": f"providers/{account.provider_id}/accounts/{account.id}",
            "provider": account.provider_id,
            "state": account.state,
            "approvals": approvals or None,
            "createTime": rfc3339(account.google_create_time),
            "updateTime": rfc3339(account.google_update_time),
        }
    )
    ours = {
        "id": account.id,
        "customerId": account.customer_id,
        "signupApproval": account.signup_approval,
        "signedUpAt": rfc3339(account.signed_up_at),
        "deletedAt": rfc3339(account.deleted_at),
    }
    return {**api, **ours}


def entitlement_record(entitlement: Entitlement, customer_id: str | None) -> dict[str, Any]:
    e = entitlement
    applied = _compact(
        {
            "name": f"providers/{e.provider_id}/entitlements/{e.id}",
            "account": f"providers/{e.provider_id}/accounts/{e.account_id}",
            "provider": e.provider_id,
            "product": e.product,
            "plan": e.plan,
            "newPendingPlan": e.new_pending_plan,
            "state": e.state,
            "offer": e.offer,
            "offerEndTime": rfc3339(e.offer_end_time),
            "newOfferStartTime": rfc3339(e.new_offer_start_time),
            "newOfferEndTime": rfc3339(e.new_offer_end_time),
            "subscriptionEndTime": rfc3339(e.subscription_end_time),
            "usageReportingId": e.usage_reporting_id,
            "cancellationReason": e.cancellation_reason,
            "messageToUser": e.message_to_user,
            "orderId": e.order_id,
            "createTime": rfc3339(e.google_create_time),
            "updateTime": rfc3339(e.google_update_time),
        }
    )
    # Fields we keep no column for (productExternalName, consumers, ...) come from the last GET;
    # a field the last GET no longer had is dropped with it.
    raw = dict(e.raw or {})
    for key in ("newPendingPlan", "cancellationReason", "messageToUser"):
        if key not in applied:
            raw.pop(key, None)
    ours = {
        "id": e.id,
        "serviceEnabled": e.service_enabled,
        "servicePlan": e.service_plan,
        "customerId": customer_id,
        "serviceSuspendedReason": e.service_suspended_reason,
        "activeSince": rfc3339(e.active_since),
        "cancelledAt": rfc3339(e.cancelled_at),
        "deletedAt": rfc3339(e.deleted_at),
        "offerTerms": OfferTerms.of(e.raw, "DELETED" if e.deleted_at else e.state).to_dict(),
    }
    return {**raw, **applied, **ours}


def list_accounts(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(sa.select(Account).order_by(Account.created_at, Account.id))
    return [account_record(row) for row in rows]


def get_account(session: Session, account_id: str) -> dict[str, Any] | None:
    account = session.get(Account, account_id)
    if account is None:
        return None
    record = account_record(account)
    record["entitlements"] = list(
        session.scalars(
            sa.select(Entitlement.id)
            .where(Entitlement.account_id == account_id)
            .order_by(Entitlement.created_at, Entitlement.id)
        )
    )
    return record


def _entitlements_query(
    *, state: str | None = None, account: str | None = None, product: str | None = None
) -> sa.Select[Entitlement, str | None]:
    query = sa.select(Entitlement, Account.customer_id).join(
        Account, Account.id == Entitlement.account_id, isouter=True
    )
    if state:
        wanted = state.upper()
        wanted = wanted if wanted.startswith("ENTITLEMENT_") else f"ENTITLEMENT_{wanted}"
        query = query.where(Entitlement.state == wanted)
    if account:
        query = query.where(Entitlement.account_id == account.rsplit("/", 1)[-1])
    if product:
        query = query.where(Entitlement.product == product)
    return query.order_by(Entitlement.created_at, Entitlement.id)


def list_entitlements(session: Session, **filters: str | None) -> list[dict[str, Any]]:
    return [
        entitlement_record(entitlement, customer_id)
        for entitlement, customer_id in session.execute(_entitlements_query(**filters))
    ]


def get_entitlement(session: Session, entitlement_id: str) -> dict[str, Any] | None:
    query = _entitlements_query().where(Entitlement.id == entitlement_id)
    row = session.execute(query).first()
    return entitlement_record(row[0], row[1]) if row else None


def event_record(message: InboxMessage, *, full: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventId": message.event_id,
        "eventType": message.event_type,
        "providerId": message.provider_id,
        "subject": f"{message.subject_kind}/{message.subject_id}" if message.subject_id else None,
        "status": message.status,
        "attempts": message.attempts,
        "deliveries": message.deliveries,
        "source": message.source,
        "messageId": message.message_id,
        "receivedAt": rfc3339(message.received_at),
        "processedAt": rfc3339(message.processed_at),
        "error": message.last_error,
    }
    if full:
        record["payload"] = message.payload
        record["traceback"] = message.traceback
    return record


def list_events(
    session: Session, *, status: str | None = None, event_type: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    query = sa.select(InboxMessage)
    if status:
        query = query.where(InboxMessage.status == status)
    if event_type:
        query = query.where(InboxMessage.event_type == event_type)
    query = query.order_by(InboxMessage.id.desc()).limit(limit)
    return [event_record(row) for row in session.scalars(query)]


def get_event(session: Session, event_id: str) -> dict[str, Any] | None:
    message = session.scalar(sa.select(InboxMessage).where(InboxMessage.event_id == event_id))
    return event_record(message, full=True) if message else None


class SqlApiRecords:
    """The CLI's records over one session (the base of `console.SqlConsoleReads`)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def api_accounts(self) -> list[dict[str, Any]]:
        return list_accounts(self.session)

    def api_account(self, account_id: str) -> dict[str, Any] | None:
        return get_account(self.session, account_id)

    def api_entitlements(
        self, *, state: str | None = None, account: str | None = None, product: str | None = None
    ) -> list[dict[str, Any]]:
        return list_entitlements(self.session, state=state, account=account, product=product)

    def api_entitlement(self, entitlement_id: str) -> dict[str, Any] | None:
        return get_entitlement(self.session, entitlement_id)

    def api_events(
        self, *, status: str | None = None, event_type: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return list_events(self.session, status=status, event_type=event_type, limit=limit)

    def api_event(self, event_id: str) -> dict[str, Any] | None:
        return get_event(self.session, event_id)
