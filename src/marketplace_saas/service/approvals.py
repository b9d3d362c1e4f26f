"""Provider decisions on accounts and entitlements: approve, reject, plan changes.

Used by the lifecycle (per policy), the CLI and admin console (an operator), and the sign-up page.
Each function re-reads the resource from the Procurement API, calls Google only when the decision
is still pending (a call that finds it already taken is benign, confirmed by a second read), then
records the API's state, an audit row for the decision and one per Google call, in one short
transaction. No transaction is open while Google is called.

Outcomes: `approved`, `rejected`, `already_approved`, `already_rejected`, `suspended`,
`message_set`, `reset`. Errors: `ResourceNotFound` (no such resource), `NothingToDecide` (not
waiting for this decision), `ProcurementError` (Google refused; `TransientProcurementError`: try
again).
The read-decide-read-record machinery is in `service.decisions`.
"""

from __future__ import annotations

from marketplace_saas.adapters.procurement_errors import ProcurementError
from marketplace_saas.domain.entitlements import (
    ACTIVATION_REQUESTED,
    APPROVAL_APPROVED,
    APPROVAL_REJECTED,
    CANCELLED,
    PENDING_PLAN_CHANGE,
    PENDING_PLAN_CHANGE_APPROVAL,
    EntitlementView,
)
from marketplace_saas.domain.errors import NothingToDecide, ResourceNotFound
from marketplace_saas.service.audit import CallLog
from marketplace_saas.service.decisions import (
    ApprovalResult,
    decide_account,
    decide_entitlement,
    read_account,
    record_account,
    save_calls,
)
from marketplace_saas.service.unit_of_work import App as Container

__all__ = [
    "ApprovalResult",
    "approve_account",
    "approve_after_signup",
    "approve_entitlement",
    "approve_pending_entitlements",
    "approve_plan_change",
    "reject_account",
    "reject_entitlement",
    "reject_plan_change",
    "reset_account",
    "set_message_to_user",
    "suspend_entitlement",
]


# -- entitlements ---------------------------------------------------------------------------------


def _activation_done(view: EntitlementView) -> bool:
    return view.in_service or view.approved_awaiting_start


def approve_entitlement(container: Container, entitlement_id: str, *, actor: str) -> ApprovalResult:
    """Approve an entitlement waiting in ENTITLEMENT_ACTIVATION_REQUESTED."""
    return decide_entitlement(
        container,
        entitlement_id,
        actor=actor,
        action="approve_entitlement",
        pending=lambda v: v.state == ACTIVATION_REQUESTED and not v.approved_awaiting_start,
        done=_activation_done,
        wanted="only an entitlement in ENTITLEMENT_ACTIVATION_REQUESTED can be approved",
        call=lambda v: container.procurement.approve_entitlement(entitlement_id),
        outcome="approved",
        already="already_approved",
    )


def reject_entitlement(
    container: Container, entitlement_id: str, *, actor: str, reason: str
) -> ApprovalResult:
    """Reject an entitlement waiting in ENTITLEMENT_ACTIVATION_REQUESTED (Google removes it)."""
    return decide_entitlement(
        container,
        entitlement_id,
        actor=actor,
        action="reject_entitlement",
        pending=lambda v: v.state == ACTIVATION_REQUESTED and not v.approved_awaiting_start,
        done=lambda v: v.state == CANCELLED,
        wanted="only an entitlement in ENTITLEMENT_ACTIVATION_REQUESTED can be rejected",
        call=lambda v: container.procurement.reject_entitlement(entitlement_id, reason),
        outcome="rejected",
        already="already_rejected",
        details={"reason": reason},
        gone_is_done=True,
    )


def approve_plan_change(container: Container, entitlement_id: str, *, actor: str) -> ApprovalResult:
    """Approve the pending plan change, echoing `newPendingPlan` as read from the API."""
    return decide_entitlement(
        container,
        entitlement_id,
        actor=actor,
        action="approve_plan_change",
        pending=lambda v: v.state == PENDING_PLAN_CHANGE_APPROVAL and bool(v.new_pending_plan),
        done=lambda v: v.state == PENDING_PLAN_CHANGE or (v.in_service and not v.new_pending_plan),
        wanted="no plan change is waiting for approval",
        call=lambda v: container.procurement.approve_plan_change(
            entitlement_id, v.new_pending_plan or ""
        ),
        outcome="approved",
        already="already_approved",
        # Before deciding, only a change approved and waiting for its start proves an approval:
        # in service with no pending plan is also what a rejected (or never asked) change leaves.
        already_done=lambda v: v.state == PENDING_PLAN_CHANGE,
    )


def reject_plan_change(
    container: Container, entitlement_id: str, *, actor: str, reason: str
) -> ApprovalResult:
    """Reject the pending plan change; the entitlement stays on its current plan."""
    return decide_entitlement(
        container,
        entitlement_id,
        actor=actor,
        action="reject_plan_change",
        pending=lambda v: v.state == PENDING_PLAN_CHANGE_APPROVAL and bool(v.new_pending_plan),
        done=_plan_change_settled,
        wanted="no plan change is waiting for approval",
        call=lambda v: container.procurement.reject_plan_change(
            entitlement_id, v.new_pending_plan or "", reason
        ),
        outcome="rejected",
        already="already_rejected",
        details={"reason": reason},
        # In service with no pending plan is also what an approved change leaves once it took
        # effect: only our record of a rejection, with no plan change since, proves one.
        already_done=lambda v: _plan_change_settled(v) and _rejection_stands(container, v.id),
    )


def _plan_change_settled(view: EntitlementView) -> bool:
    return (
        view.in_service and view.state != PENDING_PLAN_CHANGE_APPROVAL and not view.new_pending_plan
    )


def _rejection_stands(container: Container, entitlement_id: str) -> bool:
    with container.reading() as uow:
        return uow.plans.rejection_stands(entitlement_id)


def suspend_entitlement(
    container: Container, entitlement_id: str, *, actor: str, reason: str
) -> ApprovalResult:
    """Ask Google to suspend (documented as "not yet supported": expect a ProcurementError)."""
    return decide_entitlement(
        container,
        entitlement_id,
        actor=actor,
        action="suspend_entitlement",
        pending=lambda v: v.in_service,
        done=lambda v: v.state == "ENTITLEMENT_SUSPENDED",
        wanted="only an entitlement in service can be suspended",
        call=lambda v: container.procurement.suspend_entitlement(entitlement_id, reason),
        outcome="suspended",
        already="already_suspended",
        details={"reason": reason},
    )


def set_message_to_user(
    container: Container, entitlement_id: str, *, actor: str, message: str
) -> ApprovalResult:
    """Show `message` to the customer while a provider decision is pending."""
    return decide_entitlement(
        container,
        entitlement_id,
        actor=actor,
        action="patch_message_to_user",
        pending=lambda v: v.state in (ACTIVATION_REQUESTED, PENDING_PLAN_CHANGE_APPROVAL),
        done=lambda v: False,
        wanted=(
            "messageToUser can be set only in ENTITLEMENT_ACTIVATION_REQUESTED or "
            "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"
        ),
        call=lambda v: _patch(container, entitlement_id, message),
        outcome="message_set",
        already="message_set",
        details={"message": message},
    )


def _patch(container: Container, entitlement_id: str, message: str) -> None:
    container.procurement.patch_message_to_user(entitlement_id, message)


# -- accounts -------------------------------------------------------------------------------------


def approve_account(
    container: Container, account_id: str, *, actor: str, reason: str | None = None
) -> ApprovalResult:
    """Grant the account's `signup` approval (after the customer signed up, or an operator's)."""
    return decide_account(
        container,
        account_id,
        actor=actor,
        action="approve_account",
        target=APPROVAL_APPROVED,
        call=lambda: container.procurement.approve_account(account_id, "signup", reason),
        outcome="approved",
        already="already_approved",
        details={"reason": reason} if reason else None,
    )


def reject_account(
    container: Container, account_id: str, *, actor: str, reason: str
) -> ApprovalResult:
    """Reject the account's `signup` approval."""
    return decide_account(
        container,
        account_id,
        actor=actor,
        action="reject_account",
        target=APPROVAL_REJECTED,
        call=lambda: container.procurement.reject_account(account_id, reason),
        outcome="rejected",
        already="already_rejected",
        details={"reason": reason},
    )


def reset_account(container: Container, account_id: str, *, actor: str) -> ApprovalResult:
    """Reset a test account to a pending sign-up (Google cancels its entitlements).

    Re-read, call Google, read again and record the account with a `reset_account` audit row
    and one row per Google call, like the other decisions; outcome `reset`.
    """
    calls = CallLog(container.now)
    view = read_account(container, calls, account_id)
    if view is None:
        save_calls(container, calls, actor)
        raise ResourceNotFound("account", account_id)
    try:
        calls.call(
            "reset_account",
            lambda: container.procurement.reset_account(account_id),
            account_id=account_id,
        )
    except ProcurementError:
        save_calls(container, calls, actor)
        raise
    after = read_account(container, calls, account_id)
    if after is None:
        save_calls(container, calls, actor)
        raise ResourceNotFound("account", account_id)
    record_account(container, calls, after, actor=actor, action="reset_account", outcome="reset")
    return ApprovalResult("account", account_id, "reset", after.signup_state)


def approve_pending_entitlements(
    container: Container, account_id: str, *, actor: str
) -> list[ApprovalResult]:
    """Approve every entitlement of the account still waiting for the provider's approval."""
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
        if view.state != ACTIVATION_REQUESTED or view.approved_awaiting_start:
            continue
        try:
            if container.settings.provision_before_approve:
                # PROVISION_BEFORE_APPROVE: approved by the hook dispatcher once provisioned.
                from marketplace_saas.service.provisioning import begin_provisioning

                results.append(begin_provisioning(container, view.id, actor=actor))
                continue
            results.append(approve_entitlement(container, view.id, actor=actor))
        except (ResourceNotFound, NothingToDecide):
            continue  # it moved on between the list and the approval: nothing to approve
    return results


def approve_after_signup(
    container: Container, account_id: str, *, actor: str
) -> list[ApprovalResult]:
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
