"""What to do about a pending approval, per `APPROVAL_POLICY` and `PLAN_CHANGE_POLICY`.

    auto     approve as Google's codelab does (the account on ACCOUNT_ACTIVE, entitlements on
             ENTITLEMENT_CREATION_REQUESTED)
    signup   (default) approve only once the customer has signed up on our sign-up page
    manual   record and wait for an operator

Plan changes: `auto` approves the `newPendingPlan` read from the API, `manual` waits.

The conditions below say what an entitlement waits for and when a decision counts as taken;
every decision (the policies', an operator's, the sign-up's) is judged by them
(`service.procurement.decisions`).
"""

from __future__ import annotations

from enum import StrEnum

from marketplace_saas.domain.entitlements import (
    ACTIVATION_REQUESTED,
    APPROVAL_PENDING,
    CANCELLED,
    PENDING_PLAN_CHANGE,
    PENDING_PLAN_CHANGE_APPROVAL,
    SUSPENDED,
    EntitlementView,
)

# -- what an entitlement waits for, and when a decision is taken --------------------------------


def awaits_approval(entitlement: EntitlementView) -> bool:
    """In ACTIVATION_REQUESTED and nobody approved it yet."""
    return entitlement.state == ACTIVATION_REQUESTED and not entitlement.approved_awaiting_start


def approval_taken(entitlement: EntitlementView) -> bool:
    """Approved: in service, or approved and waiting for its start."""
    return entitlement.in_service or entitlement.approved_awaiting_start


def rejection_taken(entitlement: EntitlementView) -> bool:
    return entitlement.state == CANCELLED


def awaits_plan_change(entitlement: EntitlementView) -> bool:
    """A plan change waits for the provider's approval."""
    return entitlement.state == PENDING_PLAN_CHANGE_APPROVAL and bool(entitlement.new_pending_plan)


def plan_change_approved(entitlement: EntitlementView) -> bool:
    """Approved and waiting for its start, or in service with no change pending any more."""
    return entitlement.state == PENDING_PLAN_CHANGE or (
        entitlement.in_service and not entitlement.new_pending_plan
    )


def plan_change_settled(entitlement: EntitlementView) -> bool:
    """In service and no change pending: what a rejected (or approved, done) change leaves."""
    return (
        entitlement.in_service
        and entitlement.state != PENDING_PLAN_CHANGE_APPROVAL
        and not entitlement.new_pending_plan
    )


def suspension_taken(entitlement: EntitlementView) -> bool:
    return entitlement.state == SUSPENDED


def accepts_message_to_user(entitlement: EntitlementView) -> bool:
    """`messageToUser` is shown while a provider decision is pending."""
    return entitlement.state in (ACTIVATION_REQUESTED, PENDING_PLAN_CHANGE_APPROVAL)


# -- what the policies decide -------------------------------------------------------------------


class Decision(StrEnum):
    APPROVE = "approve"
    WAIT = "wait"  # a decision is pending, and this policy does not take it now
    NOTHING = "nothing"  # nothing is pending


def account_decision(policy: str, *, signup_state: str | None, signed_up: bool) -> Decision:
    """The account's `signup` approval: only a PENDING one is ours to decide."""
    if signup_state != APPROVAL_PENDING:
        return Decision.NOTHING
    if policy == "auto" or (policy == "signup" and signed_up):
        return Decision.APPROVE
    return Decision.WAIT


def entitlement_decision(policy: str, entitlement: EntitlementView, *, signed_up: bool) -> Decision:
    """An entitlement in ACTIVATION_REQUESTED that nobody approved yet."""
    if not awaits_approval(entitlement):
        return Decision.NOTHING
    if policy == "auto" or (policy == "signup" and signed_up):
        return Decision.APPROVE
    return Decision.WAIT


def plan_change_decision(policy: str, entitlement: EntitlementView) -> Decision:
    """A plan change awaiting the provider's approval."""
    if not awaits_plan_change(entitlement):
        return Decision.NOTHING
    return Decision.APPROVE if policy == "auto" else Decision.WAIT
