"""What the sign-up pages show after the fact, read from our records only (no Google call).

signup_status(container, account_id)      the done page: who signed up, what, and where the
                                          approval stands
customer_overview(container, customer_id) the welcome page of a returning customer
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplace_saas.domain.entitlements import APPROVAL_APPROVED, APPROVAL_REJECTED, CANCELLED
from marketplace_saas.domain.signup import Purchase
from marketplace_saas.service.ports import CustomerRecord
from marketplace_saas.service.unit_of_work import App


@dataclass(frozen=True)
class SignupStatus:
    account_id: str
    customer_id: str
    name: str
    email: str
    company: str
    purchases: list[Purchase]
    policy: str
    approval: str  # approved | awaiting_operator | confirming | rejected
    signed_up_at: datetime | None


@dataclass(frozen=True)
class CustomerOverview:
    customer_id: str
    name: str
    purchases: list[Purchase]


def account_entry(customer: CustomerRecord, account_id: str) -> dict[str, Any]:
    """What the sign-up stored for this account in `customers.signup_data`."""
    accounts = (customer.signup_data or {}).get("accounts") or {}
    entry = accounts.get(account_id) if isinstance(accounts, dict) else None
    return entry if isinstance(entry, dict) else {}


def signup_status(container: App, account_id: str) -> SignupStatus | None:
    """The done page's facts; None when this account has not signed up."""
    with container.reading() as uow:
        row = uow.accounts.get(account_id)
        if row is None or row.signed_up_at is None or row.customer_id is None:
            return None
        customer = uow.customers.get(row.customer_id)
        if customer is None:
            return None
        known = {e.id: e.state for e in uow.entitlements.of_account(account_id)}
        purchases = []
        for item in account_entry(customer, account_id).get("purchases") or []:
            purchase = Purchase.from_dict(item) if isinstance(item, dict) else None
            if purchase is not None:
                state = known.get(purchase.entitlement_id, purchase.state)
                purchases.append(purchase.with_state(state))
        policy = container.settings.approval_policy
        if row.signup_approval == APPROVAL_APPROVED:
            approval = "approved"
        elif row.signup_approval == APPROVAL_REJECTED:
            approval = "rejected"
        else:
            approval = "awaiting_operator" if policy == "manual" else "confirming"
        return SignupStatus(
            account_id=account_id,
            customer_id=customer.id,
            name=customer.name or "",
            email=customer.email or "",
            company=customer.company or "",
            purchases=purchases,
            policy=policy,
            approval=approval,
            signed_up_at=row.signed_up_at,
        )


def customer_overview(container: App, customer_id: str) -> CustomerOverview | None:
    """A signed-up customer's name and live subscriptions across their accounts."""
    with container.reading() as uow:
        customer = uow.customers.get(customer_id)
        if customer is None or customer.erased_at is not None:
            return None
        purchases = [
            Purchase(e.id, e.product, e.service_plan or e.plan, e.state)
            for account in uow.accounts.of_customer(customer_id)
            for e in uow.entitlements.of_account(account.id)
            if e.state != CANCELLED and e.deleted_at is None
        ]
        return CustomerOverview(customer.id, customer.name or "", purchases)
