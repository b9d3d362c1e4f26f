"""Every provider decision, in one place: approve or reject an account, an entitlement, a plan
change; suspend; an operator's choice among them.

Who asks: an operator through the console, the JSON API or the CLI (`decide_as_operator` and the
functions below); the approvals nobody clicks (`automatic`: per policy, after the sign-up, after
provisioning) take theirs through `approve_entitlement` and `approve_account` too. When a
decision is pending and when it is taken are the conditions of `domain.policies`; how it is
carried out (read, call Google if still pending, read, record) is `decision_flow`.

Outcomes: `approved`, `rejected`, `already_approved`, `already_rejected`, `suspended`,
`message_set`, `reset`. Errors: `ResourceNotFound`, `NothingToDecide`, `ProcurementError`
(`TransientProcurementError`: try again).
"""

from __future__ import annotations

from collections.abc import Callable

from marketplace_saas.adapters.procurement_errors import ProcurementError
from marketplace_saas.domain.entitlements import (
    APPROVAL_APPROVED,
    APPROVAL_REJECTED,
    PENDING_PLAN_CHANGE,
    EntitlementView,
)
from marketplace_saas.domain.errors import ResourceNotFound
from marketplace_saas.domain.policies import (
    approval_taken,
    awaits_approval,
    awaits_plan_change,
    plan_change_approved,
    plan_change_settled,
    rejection_taken,
    suspension_taken,
)
from marketplace_saas.service.audit import CallLog
from marketplace_saas.service.procurement.decision_flow import (
    AccountDecision,
    ApprovalResult,
    EntitlementDecision,
    read_account,
    record_account,
    run_account_decision,
    run_entitlement_decision,
    save_calls,
)
from marketplace_saas.service.procurement.provisioning import (
    set_message_to_user,
)
from marketplace_saas.service.unit_of_work import App

__all__ = [
    "ApprovalResult",
    "approve_account",
    "approve_entitlement",
    "approve_plan_change",
    "decide_as_operator",
    "reject_account",
    "reject_entitlement",
    "reject_plan_change",
    "reset_account",
    "set_message_to_user",
    "suspend_entitlement",
]


# -- the decisions on an entitlement ----------------------------------------------------------

APPROVE = EntitlementDecision(
    "approve_entitlement",
    pending=awaits_approval,
    done=approval_taken,
    wanted="only an entitlement in ENTITLEMENT_ACTIVATION_REQUESTED can be approved",
    outcome="approved",
    already="already_approved",
)
REJECT = EntitlementDecision(
    "reject_entitlement",
    pending=awaits_approval,
    done=rejection_taken,
    wanted="only an entitlement in ENTITLEMENT_ACTIVATION_REQUESTED can be rejected",
    outcome="rejected",
    already="already_rejected",
    gone_is_done=True,
)
APPROVE_PLAN_CHANGE = EntitlementDecision(
    "approve_plan_change",
    pending=awaits_plan_change,
    done=plan_change_approved,
    wanted="no plan change is waiting for approval",
    outcome="approved",
    already="already_approved",
    # Before deciding, only a change approved and waiting for its start proves an approval:
    # in service with no pending plan is also what a rejected (or never asked) change leaves.
    already_done=lambda v: v.state == PENDING_PLAN_CHANGE,
)
REJECT_PLAN_CHANGE = EntitlementDecision(
    "reject_plan_change",
    pending=awaits_plan_change,
    done=plan_change_settled,
    wanted="no plan change is waiting for approval",
    outcome="rejected",
    already="already_rejected",
)
SUSPEND = EntitlementDecision(
    "suspend_entitlement",
    pending=lambda v: v.in_service,
    done=suspension_taken,
    wanted="only an entitlement in service can be suspended",
    outcome="suspended",
    already="already_suspended",
)


def approve_entitlement(container: App, entitlement_id: str, *, actor: str) -> ApprovalResult:
    """Approve an entitlement waiting in ENTITLEMENT_ACTIVATION_REQUESTED."""
    call = container.procurement.approve_entitlement
    return run_entitlement_decision(
        container, entitlement_id, APPROVE, lambda v: call(entitlement_id), actor=actor
    )


def reject_entitlement(
    container: App, entitlement_id: str, *, actor: str, reason: str
) -> ApprovalResult:
    """Reject an entitlement waiting in ENTITLEMENT_ACTIVATION_REQUESTED (Google removes it)."""
    call = container.procurement.reject_entitlement
    return run_entitlement_decision(
        container,
        entitlement_id,
        REJECT,
        lambda v: call(entitlement_id, reason),
        actor=actor,
        details={"reason": reason},
    )


def approve_plan_change(container: App, entitlement_id: str, *, actor: str) -> ApprovalResult:
    """Approve the pending plan change, echoing `newPendingPlan` as read from the API."""
    call = container.procurement.approve_plan_change
    return run_entitlement_decision(
        container,
        entitlement_id,
        APPROVE_PLAN_CHANGE,
        lambda v: call(entitlement_id, v.new_pending_plan or ""),
        actor=actor,
    )


def reject_plan_change(
    container: App, entitlement_id: str, *, actor: str, reason: str
) -> ApprovalResult:
    """Reject the pending plan change; the entitlement stays on its current plan."""
    call = container.procurement.reject_plan_change

    def rejection_stands(view: EntitlementView) -> bool:
        # In service with no pending plan is also what an approved change leaves once it took
        # effect: only our record of a rejection, with no plan change since, proves one.
        if not plan_change_settled(view):
            return False
        with container.reading() as uow:
            return uow.plans.rejection_stands(view.id)

    return run_entitlement_decision(
        container,
        entitlement_id,
        REJECT_PLAN_CHANGE,
        lambda v: call(entitlement_id, v.new_pending_plan or "", reason),
        actor=actor,
        details={"reason": reason},
        already_done=rejection_stands,
    )


def suspend_entitlement(
    container: App, entitlement_id: str, *, actor: str, reason: str
) -> ApprovalResult:
    """Ask Google to suspend (documented as "not yet supported": expect a ProcurementError)."""
    call = container.procurement.suspend_entitlement
    return run_entitlement_decision(
        container,
        entitlement_id,
        SUSPEND,
        lambda v: call(entitlement_id, reason),
        actor=actor,
        details={"reason": reason},
    )


# -- the decisions on an account --------------------------------------------------------------


APPROVE_ACCOUNT = AccountDecision(
    "approve_account", target=APPROVAL_APPROVED, outcome="approved", already="already_approved"
)
REJECT_ACCOUNT = AccountDecision(
    "reject_account", target=APPROVAL_REJECTED, outcome="rejected", already="already_rejected"
)


def approve_account(
    container: App, account_id: str, *, actor: str, reason: str | None = None
) -> ApprovalResult:
    """Grant the account's `signup` approval (after the customer signed up, or an operator's)."""
    call = container.procurement.approve_account
    return run_account_decision(
        container,
        account_id,
        APPROVE_ACCOUNT,
        lambda: call(account_id, "signup", reason),
        actor=actor,
        details={"reason": reason} if reason else None,
    )


def reject_account(container: App, account_id: str, *, actor: str, reason: str) -> ApprovalResult:
    """Reject the account's `signup` approval."""
    call = container.procurement.reject_account
    return run_account_decision(
        container,
        account_id,
        REJECT_ACCOUNT,
        lambda: call(account_id, reason),
        actor=actor,
        details={"reason": reason},
    )


def reset_account(container: App, account_id: str, *, actor: str) -> ApprovalResult:
    """Reset a test account to a pending sign-up (Google cancels its entitlements); recorded
    like the other decisions, outcome `reset`."""
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


# -- an operator's decision (console, JSON API, CLI) ------------------------------------------

OperatorDecision = Callable[[App, str, str, str], ApprovalResult]  # app, id, actor, reason
OPERATOR_DECISIONS: dict[tuple[str, str], OperatorDecision] = {
    ("account", "approve"): lambda c, rid, actor, _r: approve_account(c, rid, actor=actor),
    ("account", "reject"): lambda c, rid, actor, r: reject_account(c, rid, actor=actor, reason=r),
    ("entitlement", "approve"): lambda c, rid, actor, _r: approve_entitlement(c, rid, actor=actor),
    ("entitlement", "reject"): lambda c, rid, actor, r: reject_entitlement(
        c, rid, actor=actor, reason=r
    ),
    ("entitlement", "approve-plan-change"): lambda c, rid, actor, _r: approve_plan_change(
        c, rid, actor=actor
    ),
    ("entitlement", "reject-plan-change"): lambda c, rid, actor, r: reject_plan_change(
        c, rid, actor=actor, reason=r
    ),
}


def decide_as_operator(
    container: App, kind: str, resource_id: str, decision: str, *, actor: str, reason: str = ""
) -> ApprovalResult:
    """`decision` (`approve`, `reject`, `approve-plan-change`, `reject-plan-change`) on an
    account or an entitlement (`kind`); KeyError for a decision that does not exist."""
    return OPERATOR_DECISIONS[(kind, decision)](container, resource_id, actor, reason)
