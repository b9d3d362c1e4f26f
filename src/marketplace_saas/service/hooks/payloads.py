"""Build the typed payload of a hook from our records, inside the enqueuer's unit of work.

    build_payload(uow, hook, entitlement=row)                  entitlement hooks (a row or a view)
    build_payload(uow, hook, account_id="...")                 account hooks
    coerce_payload(uow, hook, ordering_key, payload)           what `enqueue_hook` stores

Defaults follow the hook: `plan` is the plan we serve (or the entitlement's plan);
`previous_plan` is the plan before the last plan change; `reason` is the cancellation reason for
`entitlement.cancelled` / `entitlement.pending_cancellation`, and the Service Control error for
`entitlement.suspended`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from marketplace_saas.domain.events import Hook
from marketplace_saas.domain.hooks import AccountInfo, CustomerInfo, EntitlementInfo, HookPayload
from marketplace_saas.domain.offers import OfferTerms
from marketplace_saas.service.ports import EntitlementLike
from marketplace_saas.service.unit_of_work import UnitOfWork

__all__ = ["EntitlementLike", "build_payload", "coerce_payload", "entitlement_info"]

_TYPED_KEYS = frozenset({"customer", "account", "entitlement"})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def entitlement_info(row: EntitlementLike) -> EntitlementInfo:
    return EntitlementInfo(
        id=row.id,
        account_id=row.account_id,
        state=row.state,
        product=row.product,
        plan=row.plan,
        new_pending_plan=row.new_pending_plan,
        usage_reporting_id=row.usage_reporting_id,
        offer=row.offer,
        offer_end_time=_iso(row.offer_end_time),
        subscription_end_time=_iso(row.subscription_end_time),
        cancellation_reason=row.cancellation_reason,
        offer_terms=OfferTerms.of(row.raw, row.state).to_dict(),
    )


def _account_and_customer(
    uow: UnitOfWork, account_id: str | None
) -> tuple[AccountInfo | None, CustomerInfo | None]:
    if account_id is None:
        return None, None
    return uow.accounts.hook_parties(account_id)


def _default_reason(hook: str, row: EntitlementLike | None) -> str | None:
    if row is None:
        return None
    if hook in (Hook.ENTITLEMENT_CANCELLED, Hook.ENTITLEMENT_PENDING_CANCELLATION):
        return row.cancellation_reason
    if hook == Hook.ENTITLEMENT_SUSPENDED:
        return getattr(row, "service_suspended_reason", None)
    return None


def build_payload(
    uow: UnitOfWork,
    hook: str,
    *,
    entitlement: EntitlementLike | None = None,
    account_id: str | None = None,
    plan: str | None = None,
    previous_plan: str | None = None,
    reason: str | None = None,
    provision_before_approve: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> HookPayload:
    """The payload for `hook` about `entitlement` (or, for account hooks, `account_id`)."""
    if entitlement is None and account_id is None:
        raise ValueError("a hook payload needs an entitlement or an account id")
    account, customer = _account_and_customer(
        uow, entitlement.account_id if entitlement is not None else account_id
    )
    if entitlement is not None:
        if plan is None:
            plan = getattr(entitlement, "service_plan", None) or entitlement.plan
        if previous_plan is None and hook == Hook.ENTITLEMENT_PLAN_CHANGED:
            previous_plan = uow.plans.previous_plan(entitlement.id)
    return HookPayload(
        customer=customer,
        account=account,
        entitlement=entitlement_info(entitlement) if entitlement is not None else None,
        plan=plan,
        previous_plan=previous_plan,
        reason=reason if reason is not None else _default_reason(hook, entitlement),
        provision_before_approve=provision_before_approve,
        extra=dict(extra or {}),
    )


def _bare(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def coerce_payload(
    uow: UnitOfWork,
    hook: str,
    ordering_key: str,
    payload: HookPayload | Mapping[str, Any],
) -> dict[str, Any]:
    """The dict to store: a `HookPayload` as is; a mapping in the typed shape as is; a mapping of
    ids only (`{"entitlementId": ...}`, `{"entitlement": "<id>", "reason": ...}`) filled in from
    our records, its `reason` / `previous_plan` / `plan` kept, the whole of it under `extra`."""
    if isinstance(payload, HookPayload):
        return payload.to_dict()
    data = dict(payload)
    if any(isinstance(data.get(key), Mapping) for key in _TYPED_KEYS):
        return HookPayload.from_dict(data).to_dict()
    entitlement_id = _bare(data, "entitlementId", "entitlement_id", "entitlement")
    account_id = _bare(data, "accountId", "account_id", "account")
    row = uow.entitlements.get(entitlement_id) if entitlement_id else None
    if row is None and account_id is None:
        row = uow.entitlements.get(ordering_key)
        account_id = None if row is not None else ordering_key
    if row is None and account_id is None:
        return HookPayload(extra=data).to_dict()
    return build_payload(
        uow,
        hook,
        entitlement=row,
        account_id=account_id,
        plan=_bare(data, "plan"),
        previous_plan=_bare(data, "previous_plan", "previousPlan"),
        reason=_bare(data, "reason"),
        extra=data,
    ).to_dict()
