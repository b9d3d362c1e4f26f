"""Sign-up: a marketplace buyer becomes our customer, and their purchase gets approved.

    begin_signup(container, token)          verify the token, read the account and its purchases
    complete_signup(container, visitor, form)  create or link the customer, then approve
    (what the pages show afterwards, from our records: `service.signup_status`)
    recognise(container, token)             the login URL: a returning, signed-up customer?

Errors: `SignupRefused` (401: the token or the account is not acceptable; `reason` is logged,
never the token), `SignupUnavailable` (503: Google or its certificates cannot be reached now),
`InvalidForm` (the answers need fixing; `errors` per field).

Idempotent at the database level: the first completion claims the account with a conditional
update (`signed_up_at IS NULL`), in the same transaction as the customer, the audit row and the
`customer.signed_up` hook. Only the claimant asks Google to approve; a second click, a reload or a
racing tab finds the claim, waits briefly for the claimant's outcome, and shows the same page. No
database transaction is open while Google is called.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from marketplace_saas.adapters.db.errors import IntegrityError
from marketplace_saas.adapters.procurement_errors import ProcurementError, TransientProcurementError
from marketplace_saas.adapters.tokens import (
    CertificatesUnavailable,
    InvalidSignupToken,
    SignupToken,
    SignupTokenVerifier,
)
from marketplace_saas.config import Settings
from marketplace_saas.domain.entitlements import (
    APPROVAL_APPROVED,
    CANCELLED,
    AccountView,
    EntitlementView,
)
from marketplace_saas.domain.errors import MarketplaceError
from marketplace_saas.domain.hooks import AccountInfo, CustomerInfo, Hook, HookPayload
from marketplace_saas.domain.signup import (
    RECORD_COLUMNS,
    Answer,
    Purchase,
    Validated,
    Visitor,
    validate,
)
from marketplace_saas.service import approvals, records
from marketplace_saas.service.audit import record_change
from marketplace_saas.service.hooks.outbox import enqueue_hook
from marketplace_saas.service.ports import AccountRecord, CustomerRecord
from marketplace_saas.service.signup_status import SignupStatus, account_entry, signup_status
from marketplace_saas.service.unit_of_work import App as Container
from marketplace_saas.service.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

ACTOR = "signup"
SANDBOX_AUDIENCE = "localhost"  # SIGNUP_AUDIENCE in the sandbox when none is set
RETRY_APPROVAL_AFTER = timedelta(seconds=60)  # a claimant that never finished: try again
WAIT_FOR_CLAIMANT_SECONDS = 10.0


class SignupError(MarketplaceError):
    """Sign-up could not go ahead."""


class SignupRefused(SignupError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SignupUnavailable(SignupError):
    """Try again shortly: Google, or its certificates endpoint, could not be reached."""


class InvalidForm(SignupError):
    def __init__(self, validated: Validated) -> None:
        super().__init__("the sign-up form has errors: " + ", ".join(sorted(validated.errors)))
        self.validated = validated


@dataclass(frozen=True)
class SignupStart:
    visitor: Visitor
    purchases: list[Purchase]
    signed_up: bool
    prefill: dict[str, Answer] = field(default_factory=dict)


def audience(settings: Settings) -> str:
    if settings.signup_audience:
        return settings.signup_audience
    if settings.sandbox:
        return SANDBOX_AUDIENCE
    raise SignupUnavailable("sign-up is not configured: set SIGNUP_AUDIENCE to the product domain")


@functools.lru_cache(maxsize=8)
def _verifier(certs_url: str, expected_audience: str) -> SignupTokenVerifier:
    """One verifier (and certificate cache) per pinned URL and audience, for the process."""
    return SignupTokenVerifier.for_url(certs_url, expected_audience)


def verifier_for(settings: Settings) -> SignupTokenVerifier:
    return _verifier(settings.signup_certs_url, audience(settings))


def identify(container: Container, token: str, *, route: str) -> tuple[Visitor, AccountView]:
    """The verified visitor and their account as the Procurement API has it; no records change."""
    try:
        verified = verifier_for(container.settings).verify(token)
    except InvalidSignupToken as exc:
        log.warning("signup.token_rejected", route=route, reason=exc.reason)
        raise SignupRefused(exc.reason, exc.message) from None
    except CertificatesUnavailable as exc:
        log.error("signup.certs_unavailable", route=route, error=str(exc))
        raise SignupUnavailable("Google's sign-up certificates could not be read") from None
    resource = _google(lambda: container.procurement.get_account(verified.account_id))
    if resource is None:
        reason = "unknown_account"
        log.warning(
            "signup.token_rejected", route=route, reason=reason, account_id=verified.account_id
        )
        raise SignupRefused("unknown_account", "Google Cloud Marketplace has no such account.")
    return _visitor(verified), AccountView.from_api(resource)


def _visitor(token: SignupToken) -> Visitor:
    return Visitor(token.account_id, token.user_identity, token.roles, token.orders)


def _google(call: Any) -> Any:
    """A Procurement API read; any failure is "try again shortly" for the buyer, logged for us."""
    try:
        return call()
    except TransientProcurementError as exc:
        log.warning("signup.procurement_unavailable", error=str(exc))
        raise SignupUnavailable("Google Cloud Marketplace could not be reached") from None
    except ProcurementError as exc:
        log.error("signup.procurement_failed", error=str(exc))
        raise SignupUnavailable("Google Cloud Marketplace refused our request") from None


def purchases_of(container: Container, account_id: str) -> list[Purchase]:
    """The account's entitlements from the API, oldest first, without cancelled ones."""
    quoted = account_id.replace("\\", "\\\\").replace('"', '\\"')
    query = f'account="{quoted}"'
    resources = _google(lambda: list(container.procurement.list_entitlements(query)))
    views = [EntitlementView.from_api(r) for r in resources]
    oldest = datetime.min.replace(tzinfo=UTC)
    views.sort(key=lambda v: (v.create_time is None, v.create_time or oldest, v.id))
    return [Purchase.from_view(v) for v in views if v.state != CANCELLED]


def begin_signup(container: Container, token: str) -> SignupStart:
    visitor, account = identify(container, token, route="signup")
    purchases = purchases_of(container, visitor.account_id)
    with container.reading() as uow:
        row = uow.accounts.get(visitor.account_id)
        signed_up = row is not None and row.signed_up_at is not None
        customer = _existing_customer(uow, row, visitor)
        prefill = _prefill(customer)
    log.info("signup.started", account_id=visitor.account_id, signed_up=signed_up)
    if signed_up:
        _retry_approval_if_stuck(container, visitor.account_id, account)
    return SignupStart(visitor, purchases, signed_up, prefill)


def recognise(container: Container, token: str) -> tuple[Visitor, str | None]:
    """The login URL: the visitor, and our customer id when this account has signed up."""
    visitor, _account = identify(container, token, route="login")
    with container.reading() as uow:
        row = uow.accounts.get(visitor.account_id)
        customer_id = row.customer_id if row is not None and row.signed_up_at else None
    log.info("signup.login", account_id=visitor.account_id, recognised=customer_id is not None)
    return visitor, customer_id


def complete_signup(container: Container, visitor: Visitor, form: dict[str, str]) -> SignupStatus:
    validated = validate(container.settings.signup_fields, form)
    if not validated.ok:
        raise InvalidForm(validated)
    resource = _google(lambda: container.procurement.get_account(visitor.account_id))
    if resource is None:
        log.warning("signup.account_gone", account_id=visitor.account_id)
        raise SignupRefused("unknown_account", "Google Cloud Marketplace has no such account.")
    account = AccountView.from_api(resource)
    purchases = purchases_of(container, visitor.account_id)
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
    container: Container,
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
    container: Container,
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


def _approve(container: Container, account_id: str) -> None:
    """Approve per APPROVAL_POLICY (outside any transaction), then note the outcome."""
    error: str | None = None
    try:
        approvals.approve_after_signup(container, account_id, actor=ACTOR)
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


def _approval_note(container: Container, account_id: str) -> dict[str, Any] | None:
    with container.reading() as uow:
        row = uow.accounts.get(account_id)
        customer = uow.customers.get(row.customer_id) if row and row.customer_id else None
        if customer is None:
            return None
        note = account_entry(customer, account_id).get("approval")
        return note if isinstance(note, dict) else None


def _wait_for_claimant(container: Container, account_id: str) -> None:
    """A racing request: give the claimant a moment to finish its approvals (bounded)."""
    deadline = time.monotonic() + WAIT_FOR_CLAIMANT_SECONDS
    while _approval_note(container, account_id) is None and time.monotonic() < deadline:
        time.sleep(0.1)


def _retry_approval_if_stuck(container: Container, account_id: str, account: AccountView) -> None:
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
