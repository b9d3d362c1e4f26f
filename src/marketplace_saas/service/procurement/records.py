"""Apply what the Procurement API says to our records, in the caller's unit of work.

Shared by the lifecycle (notifications), the approvals and the reconciliation: whoever read an
account or an entitlement from the API applies it here, so our records, plan history, provisioning
hooks and audit rows follow one set of rules. A version older than the one applied (`updateTime`)
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplace_saas.domain.entitlements import (
    CANCELLED,
    AccountView,
    Before,
    EntitlementView,
    is_stale,
    service_transition,
)
from marketplace_saas.domain.events import EventType, Hook
from marketplace_saas.service.audit import record_change
from marketplace_saas.service.hooks.outbox import enqueue_hook
from marketplace_saas.service.procurement.change_hooks import enqueue_change_hooks
from marketplace_saas.service.unit_of_work import UnitOfWork

# Entitlement columns copied from the API's resource.
_COPIED = (
    "account_id",
    "state",
    "product",
    "plan",
    "new_pending_plan",
    "offer",
    "offer_end_time",
    "new_offer_start_time",
    "new_offer_end_time",
    "subscription_end_time",
    "usage_reporting_id",
    "cancellation_reason",
    "message_to_user",
    "order_id",
)


@dataclass(frozen=True)
class Applied:
    """The outcome of applying one version of a resource."""

    changed: bool
    stale: bool = False
    hooks: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()


STALE = Applied(changed=False, stale=True)
UNCHANGED = Applied(changed=False)


@dataclass(frozen=True)
class Context:
    """Who is applying, when, and because of which notification."""

    actor: str
    now: datetime
    event_id: str | None = None
    event_type: str | None = None
    event_update_time: datetime | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def _before(row: dict[str, Any] | None) -> Before:
    if row is None:
        return Before()
    return Before(
        state=row["state"],
        service_enabled=row["service_enabled"],
        service_plan=row["service_plan"],
        offer_end_time=row["offer_end_time"],
        offer=row["offer"],
    )


def _new_entitlement(
    columns: tuple[str, ...], entitlement_id: str, provider_id: str, view: EntitlementView
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(columns)
    row.update(
        id=entitlement_id,
        provider_id=provider_id,
        account_id=view.account_id,
        state=view.state,
        service_enabled=False,
        raw={},
    )
    return row


def apply_entitlement(
    uow: UnitOfWork,
    *,
    provider_id: str,
    entitlement_id: str,
    view: EntitlementView | None,
    ctx: Context,
) -> Applied:
    """Make our entitlement match `view` (None: the API answered 404, it is deleted).

    The row is read, locked, and written as plain columns (`uow.lock_entitlement` and
    `uow.entitlements.save`): one SELECT and one UPDATE or INSERT, no ORM unit of work."""
    current = uow.lock_entitlement(entitlement_id)
    if view is None:
        return _apply_deleted(uow, current, ctx)
    if current is not None and is_stale(current["google_update_time"], view.update_time):
        return STALE
    before = _before(current)
    created = current is None
    row = (
        _new_entitlement(uow.entitlements.columns, entitlement_id, provider_id, view)
        if current is None
        else current
    )
    transition = service_transition(before, view, event_type=ctx.event_type)
    changes: dict[str, object] = {}
    for column in _COPIED:
        new = getattr(view, column)
        if row[column] != new:
            changes[column] = _jsonable(new)
            row[column] = new
    if created:
        changes["state"] = view.state
    if row["deleted_at"] is not None:
        row["deleted_at"] = None
        changes["deleted_at"] = None
    effective = view.update_time or ctx.now
    history_from: datetime | None = None  # when the plan we serve starts, if it changes
    if transition.turned_on:
        history_from = effective
        if ctx.event_type == EventType.ENTITLEMENT_ACTIVE and ctx.event_update_time is not None:
            history_from = min(history_from, ctx.event_update_time)
        if row["active_since"] is None:
            row["active_since"] = history_from
    elif transition.plan_changed:
        history_from = effective
    if row["service_enabled"] != transition.service_enabled:
        changes["service_enabled"] = transition.service_enabled
    if row["service_plan"] != transition.service_plan:
        changes["service_plan"] = transition.service_plan
    row["service_enabled"] = transition.service_enabled
    row["service_plan"] = transition.service_plan
    if view.state == CANCELLED and row["cancelled_at"] is None:
        cancelled_at = view.subscription_end_time or effective
        row["cancelled_at"] = cancelled_at
        changes["cancelled_at"] = cancelled_at.isoformat()
    row["google_create_time"] = view.create_time
    row["google_update_time"] = view.update_time
    row["raw"] = view.raw
    uow.entitlements.save(row, new=created)
    if history_from is not None:
        uow.plans.add(
            entitlement_id=entitlement_id,
            plan=transition.service_plan or "",
            previous_plan=before.service_plan,
            effective_at=history_from,
            event_id=ctx.event_id,
            recorded_at=ctx.now,
        )
    hooks = transition.hooks
    applied = _iso(view.update_time)  # Google's updateTime: it never goes back (lock, `is_stale`)
    if changes or hooks:
        record_change(
            uow,
            "entitlement.created" if created else "entitlement.updated",
            actor=ctx.actor,
            at=ctx.now,
            account_id=row["account_id"],
            entitlement_id=entitlement_id,
            event_id=ctx.event_id,
            details={"changes": changes, "hooks": [h.value for h in hooks], "version": applied},
        )
    version = applied or ctx.event_id or ctx.now.isoformat()
    if "deleted_at" in changes:  # revived: the same updateTime may have been told before
        version = f"{version}:revived:{ctx.now.isoformat()}"
    enqueue_change_hooks(
        uow,
        hooks,
        row,
        event_id=ctx.event_id,
        version=version,
        previous_plan=before.service_plan,
    )
    return Applied(
        changed=bool(changes), hooks=tuple(h.value for h in hooks), changes=tuple(changes)
    )


def _apply_deleted(uow: UnitOfWork, row: dict[str, Any] | None, ctx: Context) -> Applied:
    if row is None or row["deleted_at"] is not None:
        return UNCHANGED  # never seen (nothing to keep), or already recorded
    transition = service_transition(_before(row), None, event_type=ctx.event_type)
    row["deleted_at"] = ctx.now
    row["service_enabled"] = False
    row["service_plan"] = None
    if transition.turned_off and row["cancelled_at"] is None:
        row["cancelled_at"] = ctx.now
    uow.entitlements.save(row, new=False)
    record_change(
        uow,
        "entitlement.deleted",
        actor=ctx.actor,
        at=ctx.now,
        account_id=row["account_id"],
        entitlement_id=row["id"],
        event_id=ctx.event_id,
        details={"hooks": [h.value for h in transition.hooks]},
    )
    # Keyed by when: a revived entitlement may be deleted again, a new fact with its own hook.
    version = f"deleted:{ctx.now.isoformat()}"
    enqueue_change_hooks(uow, transition.hooks, row, event_id=ctx.event_id, version=version)
    return Applied(
        changed=True, hooks=tuple(h.value for h in transition.hooks), changes=("deleted_at",)
    )


def apply_account(uow: UnitOfWork, *, provider_id: str, view: AccountView, ctx: Context) -> Applied:
    """Make our account match `view`: state and approvals (the sign-up state is ours)."""
    row = uow.lock_account(view.id)
    if row is not None and is_stale(row.google_update_time, view.update_time):
        return STALE
    created = row is None
    if row is None:
        row = uow.accounts.add(view.id, provider_id=provider_id)
    changes: dict[str, object] = {}
    updates: dict[str, object] = {
        "state": view.state,
        "approvals": view.approvals,
        "signup_approval": view.signup_state,
        "google_create_time": view.create_time,
    }
    for column, new in updates.items():
        if getattr(row, column) != new:
            changes[column] = _jsonable(new)
            setattr(row, column, new)
    row.google_update_time = view.update_time
    if changes:
        record_change(
            uow,
            "account.created" if created else "account.updated",
            actor=ctx.actor,
            at=ctx.now,
            account_id=row.id,
            event_id=ctx.event_id,
            details={"changes": changes},
        )
    return Applied(changed=bool(changes), changes=tuple(changes))


def erase_account(uow: UnitOfWork, *, account_id: str, ctx: Context) -> Applied:
    """The account is gone from Google: erase the customer's personal data, keep billing's."""
    row = uow.lock_account(account_id)
    if row is None or row.deleted_at is not None:
        return UNCHANGED
    row.deleted_at = ctx.now
    erased_customer: str | None = None
    if row.customer_id is not None:
        siblings = uow.accounts.of_customer(row.customer_id)
        customer = uow.customers.get(row.customer_id)
        if customer is not None and all(a.deleted_at is not None for a in siblings):
            customer.name = None
            customer.email = None
            customer.company = None
            customer.user_identity = None
            customer.signup_data = {}
            customer.erased_at = ctx.now
            erased_customer = customer.id
    record_change(
        uow,
        "account.deleted",
        actor=ctx.actor,
        at=ctx.now,
        account_id=account_id,
        event_id=ctx.event_id,
        details={"erased_customer": erased_customer},
    )
    enqueue_hook(
        uow,
        Hook.ACCOUNT_DELETED.value,
        ordering_key=account_id,
        idempotency_key=f"{Hook.ACCOUNT_DELETED.value}:{account_id}",
        payload={"accountId": account_id, "customerId": row.customer_id, "eventId": ctx.event_id},
    )
    return Applied(changed=True, hooks=(Hook.ACCOUNT_DELETED.value,), changes=("deleted_at",))
