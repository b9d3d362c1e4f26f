"""Approvals nobody clicks: what the policies decide on their own, and the approvals that follow
a sign-up or a provisioning.

    apply_policies(app, calls, view, signed_up=)        an entitlement (lifecycle, reconciliation)
    apply_account_policy(app, calls, view, signed_up=)  an account's `signup` approval
    approve_after_signup(app, account_id, actor=)       the sign-up page, per APPROVAL_POLICY
    approve_after_provisioning(app, delivery)           the hook dispatcher, once provisioned

Whether a policy approves is `domain.policies`; each approval is taken as `decisions` takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog

from marketplace_saas.adapters.hooks import Delivery
from marketplace_saas.adapters.procurement_errors import ProcurementError, benign_outcome
from marketplace_saas.domain.entitlements import APPROVAL_APPROVED, AccountView, EntitlementView
from marketplace_saas.domain.errors import NothingToDecide, ResourceNotFound
from marketplace_saas.domain.policies import (
    Decision,
    account_decision,
    awaits_approval,
    awaits_plan_change,
    entitlement_decision,
    plan_change_decision,
)
from marketplace_saas.service.audit import CallLog
from marketplace_saas.service.procurement.decision_flow import (
    ApprovalResult,
    read_account,
    read_entitlement,
    record_account,
    save_calls,
)
from marketplace_saas.service.procurement.decisions import approve_account, approve_entitlement
from marketplace_saas.service.procurement.effects import Effects, write_account
from marketplace_saas.service.procurement.provisioning import (
    begin_provisioning,
    provision_instead_of_approving,
)
from marketplace_saas.service.unit_of_work import App

log = structlog.get_logger(__name__)
HOOKS_ACTOR = "hooks"
V = TypeVar("V", AccountView, EntitlementView)


class DecisionNotTaken(RuntimeError):
    """A decision whose outcome cannot be confirmed: Google refused it as already taken yet the
    resource still waits for it, or the read after it answered 404. The caller records nothing
    of the resource and tries again later (the inbox: a retry; the sync: an error reported)."""


def _reread(resource: str, resource_id: str, latest: V | None) -> V:
    """The read that follows a decision: a 404 there is not a deletion. Only the deletion
    notifications and the guarded sync delete; during an incident (every read 404) this read
    would otherwise mark the entitlement deleted or erase the account past the guard."""
    if latest is None:
        raise DecisionNotTaken(
            f"{resource} {resource_id} answers 404 after the decision: left to a retry or the sync"
        )
    return latest


# -- approvals that follow the sign-up and provisioning ----------------------------------------


def approve_or_provision(container: App, entitlement_id: str, *, actor: str) -> ApprovalResult:
    """Approve now, or (PROVISION_BEFORE_APPROVE) start provisioning and approve after it."""
    if not container.settings.provision_before_approve:
        return approve_entitlement(container, entitlement_id, actor=actor)
    return begin_provisioning(container, entitlement_id, actor=actor)


def approve_pending_entitlements(
    container: App, account_id: str, *, actor: str
) -> list[ApprovalResult]:
    """Approve (or provision) every entitlement of the account still waiting for approval."""
    calls = CallLog(container.now)
    query = f'account="{account_id}" AND state=ENTITLEMENT_ACTIVATION_REQUESTED'
    waiting = [
        EntitlementView.from_api(resource)
        for resource in calls.call(
            "list_entitlements",
            lambda: list(container.procurement.list_entitlements(query)),
            account_id=account_id,
        )
    ]
    save_calls(container, calls, actor)
    results = []
    for view in waiting:
        if not awaits_approval(view):
            continue
        try:
            results.append(approve_or_provision(container, view.id, actor=actor))
        except (ResourceNotFound, NothingToDecide):
            continue  # it moved on between the list and the approval: nothing to approve
    return results


def approve_after_signup(container: App, account_id: str, *, actor: str) -> list[ApprovalResult]:
    """What the sign-up page calls once the customer signed up, per APPROVAL_POLICY.

    `signup` and `auto`: approve the account and its waiting entitlements. `manual`: nothing
    (an operator decides); the account is still re-read and recorded.
    """
    if container.settings.approval_policy == "manual":
        calls = CallLog(container.now)
        view = read_account(container, calls, account_id)
        if view is None:
            save_calls(container, calls, actor)
            raise ResourceNotFound("account", account_id)
        record_account(container, calls, view, actor=actor)
        return []
    results = [approve_account(container, account_id, actor=actor)]
    results += approve_pending_entitlements(container, account_id, actor=actor)
    return results


def approve_after_provisioning(container: App, delivery: Delivery) -> None:
    """The dispatcher's after-delivery step: approve an entitlement whose workspace now exists.

    Raises (and so fails the attempt, to be retried) when Google could not be reached.
    """
    entitlement = delivery.payload.entitlement
    if not delivery.payload.provision_before_approve or entitlement is None:
        return
    try:
        result = approve_entitlement(container, entitlement.id, actor=HOOKS_ACTOR)
    except (NothingToDecide, ResourceNotFound) as exc:
        # Approved meanwhile by an operator, or cancelled: nothing left to approve.
        log.info("provisioning.nothing_to_approve", entitlement_id=entitlement.id, error=str(exc))
        return
    log.info("provisioning.approved", entitlement_id=entitlement.id, outcome=result.outcome)


# -- what the policies decide on their own (lifecycle, reconciliation) --------------------------


def _call_google(calls: CallLog, action: str, fn: Callable[[], None], **ids: str) -> None:
    """Make one decision call; a benign refusal (already decided) is fine: the re-read tells."""
    try:
        calls.call(action, fn, **ids)
    except ProcurementError as exc:
        if benign_outcome(exc) is None:
            raise


def needs_decision(container: App, view: EntitlementView, *, signed_up: bool) -> bool:
    """Whether the policies would decide something about `view` now."""
    settings = container.settings
    return (
        entitlement_decision(settings.approval_policy, view, signed_up=signed_up)
        is Decision.APPROVE
        or plan_change_decision(settings.plan_change_policy, view) is Decision.APPROVE
    )


def apply_policies(
    container: App, calls: CallLog, view: EntitlementView, *, signed_up: bool
) -> tuple[EntitlementView, Effects]:
    """Take the decisions the policies allow on `view`; the latest view, and what to record.

    Raises `DecisionNotTaken` when a decision's outcome cannot be confirmed."""
    settings = container.settings
    eid = view.id
    effects = Effects()
    latest = view
    approval = entitlement_decision(settings.approval_policy, view, signed_up=signed_up)
    if approval is Decision.APPROVE:
        # Before approving an entitlement, the account's `signup` approval must be granted.
        account = read_account(container, calls, view.account_id)
        if account is not None:
            decided = apply_account_policy(container, calls, account, signed_up=signed_up)
            effects.writes[0:0] = decided.writes
            effects.decisions[0:0] = decided.decisions
        if settings.provision_before_approve:  # the hook dispatcher approves once provisioned
            effects.writes.append(provision_instead_of_approving(container, calls, view))
            effects.decisions.append("provision_before_approve")
            return latest, effects
        approve = container.procurement.approve_entitlement
        _call_google(calls, "approve_entitlement", lambda: approve(eid), entitlement_id=eid)
        effects.decisions.append("approve_entitlement")
        latest = _reread("entitlement", eid, read_entitlement(container, calls, eid))
        if awaits_approval(latest):
            raise DecisionNotTaken(f"entitlement {eid} is still waiting for approval")
    elif plan_change_decision(settings.plan_change_policy, view) is Decision.APPROVE:
        pending = view.new_pending_plan or ""
        change = container.procurement.approve_plan_change
        _call_google(calls, "approve_plan_change", lambda: change(eid, pending), entitlement_id=eid)
        effects.decisions.append(f"approve_plan_change:{pending}")
        latest = _reread("entitlement", eid, read_entitlement(container, calls, eid))
        if latest.new_pending_plan == pending and awaits_plan_change(latest):
            raise DecisionNotTaken(f"the plan change of {eid} to {pending} is still pending")
    return latest, effects


def needs_account_decision(container: App, view: AccountView, *, signed_up: bool) -> bool:
    policy = container.settings.approval_policy
    decision = account_decision(policy, signup_state=view.signup_state, signed_up=signed_up)
    return decision is Decision.APPROVE


def apply_account_policy(
    container: App, calls: CallLog, view: AccountView, *, signed_up: bool
) -> Effects:
    """Approve the account's `signup` if the policy allows it now; record what the API says.

    Raises `DecisionNotTaken` when the read after the approval answers 404."""
    effects = Effects(detail=f"signup {view.signup_state or 'unknown'}")
    latest = view
    if (
        needs_account_decision(container, view, signed_up=signed_up)
        and view.signup_state != APPROVAL_APPROVED
    ):
        approve = container.procurement.approve_account
        _call_google(
            calls, "approve_account", lambda: approve(view.id, "signup"), account_id=view.id
        )
        effects.decisions.append("approve_account")
        latest = _reread("account", view.id, read_account(container, calls, view.id))
    effects.detail = f"signup {latest.signup_state or 'unknown'}"
    effects.writes.append(write_account(container, latest))
    return effects
