"""Sign-up: a marketplace buyer becomes our customer, and their purchase gets approved.

    begin_signup(app, token)               verify the token, read the account and its purchases
    complete_signup(app, visitor, form)    create or link the customer, then approve
    recognise(app, token)                  the login URL: a returning, signed-up customer?
    (who the visitor is: `visitor`; what the pages show afterwards: `status`)

Idempotent at the database level: the first completion claims the account with a conditional
update (`uow.accounts.claim_signup`: `signed_up_at IS NULL`), in the same unit of work as the
customer, the audit row and the `customer.signed_up` hook. Only the claimant asks Google to
approve; a second click, a reload or a racing tab finds the claim, waits briefly for the
claimant's outcome, and shows the same page. No unit of work is open while Google is called.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from marketplace_saas.adapters.db.errors import IntegrityError
from marketplace_saas.adapters.procurement_errors import ProcurementError, TransientProcurementError
from marketplace_saas.domain.entitlements import APPROVAL_APPROVED, AccountView
from marketplace_saas.domain.errors import MarketplaceError
from marketplace_saas.domain.hooks import AccountInfo, CustomerInfo, Hook, HookPayload
from marketplace_saas.domain.signup import RECORD_COLUMNS, Answer, Purchase, Visitor, validate
from marketplace_saas.service.audit import record_change
from marketplace_saas.service.hooks.outbox import enqueue_hook
from marketplace_saas.service.ports import AccountRecord, CustomerRecord
from marketplace_saas.service.procurement import automatic, records
from marketplace_saas.service.signup.status import SignupStatus, account_entry, signup_status
from marketplace_saas.service.signup.visitor import (
    InvalidForm,
    SignupRefused,
    SignupUnavailable,
    google_read,
    identify,
    purchases_of,
)
from marketplace_saas.service.unit_of_work import App, UnitOfWork

log = structlog.get_logger(__name__)

ACTOR = "signup"
RETRY_APPROVAL_AFTER = timedelta(seconds=60)  # a claimant that never finished: try again
WAIT_FOR_CLAIMANT_SECONDS = 10.0


@dataclass(frozen=True)
class SignupStart:
    visitor: Visitor
    purchases: list[Purchase]
    signed_up: bool
    prefill: dict[str, Answer] = field(default_factory=dict)


def begin_signup(container: App, token: str) -> SignupStart:
    visitor, account = identify(container, token, route="signup")
    purchases = purchases_of(container, visitor.account_id, visitor.orders)
    with container.reading() as uow:
        row = uow.accounts.get(visitor.account_id)
        signed_up = row is not None and row.signed_up_at is not None
        customer = _existing_customer(uow, row, visitor)
        prefill = _prefill(customer)
    log.info("signup.started", account_id=visitor.account_id, signed_up=signed_up)
    if signed_up:
        _retry_approval_if_stuck(container, visitor.account_id, account)
    return SignupStart(visitor, purchases, signed_up, prefill)


def recognise(container: App, token: str) -> tuple[Visitor, str | None]:
    """The login URL: the visitor, and our customer id when this account has signed up."""
    visitor, _account = identify(container, token, route="login")
    with container.reading() as uow:
        row = uow.accounts.get(visitor.account_id)
        customer_id = row.customer_id if row is not None and row.signed_up_at else None
    log.info("signup.login", account_id=visitor.account_id, recognised=customer_id is not None)
    return visitor, customer_id


def complete_signup(container: App, visitor: Visitor, form: dict[str, str]) -> SignupStatus:
    validated = validate(container.settings.signup_fields, form)
    if not validated.ok:
        raise InvalidForm(validated)
    resource = google_read(lambda: container.procurement.get_account(visitor.account_id))
    if resource is None:
        log.warning("signup.account_gone", account_id=visitor.account_id)
        raise SignupRefused("unknown_account", "Google Cloud Marketplace has no such account.")
    account = AccountView.from_api(resource)
    purchases = purchases_of(container, visitor.account_id, visitor.orders)
    claimed = _claim(container, visitor, validated.values, account, purchases)
    if claimed:
        _approve(container, visitor.account_id)
    else:
        _wait_for_claimant(container, visitor.account_id)
        _retry_approval_if_stuck(container, visitor.account_id, account)
    status = signup_status(container, visitor.account_id)
    assert status is not None  # the account was claimed, by us or by another request
    return status


def _claim(
    container: App,
    visitor: Visitor,
    values: dict[str, Answer],
    account: AccountView,
    purchases: list[Purchase],
) -> bool:
    """Record the sign-up; True for the one request that claimed the account."""
    for _attempt in range(3):
        try:
            with container.unit_of_work() as uow:
                return _claim_in(uow, container, visitor, values, account, purchases)
        except (IntegrityError, _LostRace):
            continue  # another request created the same row first: look again
    raise SignupUnavailable("the sign-up could not be recorded; please try again")


class _LostRace(Exception):
    pass


def _claim_in(
    uow: UnitOfWork,
    container: App,
    visitor: Visitor,
    values: dict[str, Answer],
    account: AccountView,
    purchases: list[Purchase],
) -> bool:
    now = container.now()
    ctx = records.Context(actor=ACTOR, now=now)
    records.apply_account(uow, provider_id=container.settings.provider_id, view=account, ctx=ctx)
    row = uow.accounts.get(visitor.account_id)
    assert row is not None  # apply_account created it
    if row.signed_up_at is not None:
        return False
    customer = _existing_customer(uow, row, visitor)
    if customer is None:
        customer = uow.customers.add(str(uuid.uuid4()), user_identity=visitor.user_identity)
    _fill_columns(customer, values)
    data = dict(customer.signup_data or {})
    data["fields"] = values
    data["accounts"] = {
        **dict(data.get("accounts") or {}),
        visitor.account_id: {
            "fields": values,
            "orders": list(visitor.orders),
            "roles": list(visitor.roles),
            "purchases": [asdict(p) for p in purchases],
            "signed_up_at": now.isoformat(),
        },
    }
    customer.signup_data = data
    if not uow.accounts.claim_signup(visitor.account_id, customer_id=customer.id, at=now):
        raise _LostRace  # rolls back our customer: the other request's sign-up stands
    record_change(
        uow,
        "customer.signed_up",
        actor=ACTOR,
        at=now,
        account_id=visitor.account_id,
        details={"customer_id": customer.id, "orders": list(visitor.orders)},
    )
    payload = HookPayload(
        customer=CustomerInfo(customer.id, customer.name, customer.email, customer.company),
        account=AccountInfo(visitor.account_id, account.state, account.signup_state),
        extra={
            "orders": list(visitor.orders),
            "user_identity": visitor.user_identity,
            "fields": values,
            "entitlements": [asdict(p) for p in purchases],
        },
    )
    enqueue_hook(
        uow,
        Hook.CUSTOMER_SIGNED_UP.value,
        ordering_key=visitor.account_id,
        idempotency_key=f"{Hook.CUSTOMER_SIGNED_UP.value}:{visitor.account_id}",
        payload=payload.to_dict(),
    )
    log.info("signup.completed", account_id=visitor.account_id, customer_id=customer.id)
    return True


def _fill_columns(customer: CustomerRecord, values: dict[str, Answer]) -> None:
    """The customer's name, email and company from the fields of those names, when asked."""
    for column in RECORD_COLUMNS:
        value = values.get(column)
        if isinstance(value, str):
            setattr(customer, column, value or None)


def _existing_customer(
    uow: UnitOfWork, row: AccountRecord | None, visitor: Visitor
) -> CustomerRecord | None:
    """Linked to the account already, or the same human (`google.user_identity`) seen before."""
    if row is not None and row.customer_id is not None:
        linked = uow.customers.get(row.customer_id)
        if linked is not None:
            return linked
    if visitor.user_identity:
        return uow.customers.by_identity(visitor.user_identity)
    return None


def _prefill(customer: CustomerRecord | None) -> dict[str, Answer]:
    if customer is None:
        return {}
    fields = (customer.signup_data or {}).get("fields") or {}
    return {k: v for k, v in fields.items() if isinstance(v, str | bool)}


def _approve(container: App, account_id: str) -> None:
    """Approve per APPROVAL_POLICY (outside any transaction), then note the outcome."""
    error: str | None = None
    try:
        automatic.approve_after_signup(container, account_id, actor=ACTOR)
        outcome = "done"
    except TransientProcurementError as exc:
        outcome, error = "retry", str(exc)
    except (ProcurementError, MarketplaceError) as exc:
        outcome, error = "failed", str(exc)
    if error is not None:
        log.error("signup.approval_failed", account_id=account_id, error=error)
    with container.unit_of_work() as uow:
        row = uow.accounts.get(account_id)
        customer = uow.customers.get(row.customer_id) if row and row.customer_id else None
        if customer is None:
            return
        data = dict(customer.signup_data or {})
        accounts = dict(data.get("accounts") or {})
        note = {"outcome": outcome, "at": container.now().isoformat(), "error": error}
        accounts[account_id] = {**dict(accounts.get(account_id) or {}), "approval": note}
        customer.signup_data = {**data, "accounts": accounts}


def _approval_note(container: App, account_id: str) -> dict[str, Any] | None:
    with container.reading() as uow:
        row = uow.accounts.get(account_id)
        customer = uow.customers.get(row.customer_id) if row and row.customer_id else None
        if customer is None:
            return None
        note = account_entry(customer, account_id).get("approval")
        return note if isinstance(note, dict) else None


def _wait_for_claimant(container: App, account_id: str) -> None:
    """A racing request: give the claimant a moment to finish its approvals (bounded)."""
    deadline = time.monotonic() + WAIT_FOR_CLAIMANT_SECONDS
    while _approval_note(container, account_id) is None and time.monotonic() < deadline:
        time.sleep(0.1)


def _retry_approval_if_stuck(container: App, account_id: str, account: AccountView) -> None:
    """Signed up a while ago, yet Google still waits for our approval: approve again."""
    if container.settings.approval_policy == "manual" or account.signup_state == APPROVAL_APPROVED:
        return
    with container.reading() as uow:
        row = uow.accounts.get(account_id)
        since = row.signed_up_at if row is not None else None
    note = _approval_note(container, account_id)
    stuck = note is None or note.get("outcome") != "done"
    if since is not None and stuck and container.now() - since >= RETRY_APPROVAL_AFTER:
        log.info("signup.approval_retry", account_id=account_id)
        _approve(container, account_id)
