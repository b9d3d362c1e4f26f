"""What to do about a pending approval, per `APPROVAL_POLICY` and `PLAN_CHANGE_POLICY`.

    auto     approve as Google's codelab does (the account on ACCOUNT_ACTIVE, entitlements on
             ENTITLEMENT_CREATION_REQUESTED)
    signup   (default) approve only once the customer has signed up on our sign-up page
    manual   record and wait for an operator

Plan changes: `auto` approves the `newPendingPlan` read from the API, `manual` waits.
"""

from __future__ import annotations

from enum import StrEnum

from marketplace_saas.domain.entitlements import (
    ACTIVATION_REQUESTED,
    APPROVAL_PENDING,
    PENDING_PLAN_CHANGE_APPROVAL,
    EntitlementView,
)


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
    if entitlement.state != ACTIVATION_REQUESTED or entitlement.approved_awaiting_start:
        return Decision.NOTHING
    if policy == "auto" or (policy == "signup" and signed_up):
        return Decision.APPROVE
    return Decision.WAIT


def plan_change_decision(policy: str, entitlement: EntitlementView) -> Decision:
    """A plan change awaiting the provider's approval."""
    if entitlement.state != PENDING_PLAN_CHANGE_APPROVAL or not entitlement.new_pending_plan:
        return Decision.NOTHING
    return Decision.APPROVE if policy == "auto" else Decision.WAIT
