"""The pure rules: what a change of an entitlement means for our service, and the policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketplace_saas.domain.entitlements import (
    ACTIVATION_REQUESTED,
    ACTIVE,
    CANCELLED,
    PENDING_CANCELLATION,
    PENDING_PLAN_CHANGE_APPROVAL,
    SUSPENDED,
    AccountView,
    Before,
    EntitlementView,
    is_stale,
    service_transition,
)
from marketplace_saas.domain.events import Hook
from marketplace_saas.domain.policies import (
    Decision,
    account_decision,
    entitlement_decision,
    plan_change_decision,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def view(state: str, plan: str = "basic", **fields: object) -> EntitlementView:
    return EntitlementView(id="e-1", account_id="a-1", state=state, plan=plan, **fields)  # type: ignore[arg-type]


def test_resources_are_read_from_the_api_json() -> None:
    entitlement = EntitlementView.from_api(
        {
            "name": "providers/P/entitlements/e-9",
            "account": "providers/P/accounts/a-9",
            "state": ACTIVE,
            "plan": "pro",
            "newPendingPlan": "",
            "productExternalName": "svc.example.com",
            "offerEndTime": "2026-02-01T00:00:00Z",
            "updateTime": "2026-01-01T00:00:00Z",
        }
    )
    assert (entitlement.id, entitlement.account_id, entitlement.product) == (
        "e-9",
        "a-9",
        "svc.example.com",  # productExternalName stands in when `product` is absent
    )
    assert entitlement.new_pending_plan is None
    assert entitlement.offer_end_time == T0 + timedelta(days=31)
    account = AccountView.from_api(
        {
            "name": "providers/P/accounts/a-9",
            "approvals": [{"name": "signup", "state": "PENDING"}],
        }
    )
    assert (account.id, account.signup_state) == ("a-9", "PENDING")


def test_stale_means_strictly_older_than_applied() -> None:
    assert is_stale(T0, T0 - timedelta(microseconds=1))
    assert not is_stale(T0, T0)
    assert not is_stale(None, T0)
    assert not is_stale(T0, None)


@pytest.mark.parametrize(
    ("before", "after", "hooks", "on"),
    [
        (Before(), view(ACTIVE), [Hook.ENTITLEMENT_ACTIVE], True),
        (Before(state=ACTIVATION_REQUESTED), view(ACTIVATION_REQUESTED), [], False),
        (Before(ACTIVE, True, "basic"), view(ACTIVE, "pro"), [Hook.ENTITLEMENT_PLAN_CHANGED], True),
        (
            Before(ACTIVE, True, "basic"),
            view(PENDING_CANCELLATION),
            [Hook.ENTITLEMENT_PENDING_CANCELLATION],
            True,
        ),
        (
            Before(PENDING_CANCELLATION, True, "basic"),
            view(ACTIVE),
            [Hook.ENTITLEMENT_CANCELLATION_REVERTED],
            True,
        ),
        (Before(ACTIVE, True, "basic"), view(CANCELLED), [Hook.ENTITLEMENT_CANCELLED], False),
        (Before(ACTIVE, True, "basic"), view(SUSPENDED), [Hook.ENTITLEMENT_SUSPENDED], False),
        (Before(SUSPENDED, False, None), view(ACTIVE), [Hook.ENTITLEMENT_RESTORED], True),
        (Before(ACTIVE, True, "basic"), None, [Hook.ENTITLEMENT_CANCELLED], False),
        (Before(CANCELLED, False, None), None, [], False),
        # Seen for the first time already cancelled: never provisioned, nothing to undo.
        (Before(), view(CANCELLED), [], False),
        # A plan change awaiting approval is still in service, on the old plan.
        (Before(ACTIVE, True, "basic"), view(PENDING_PLAN_CHANGE_APPROVAL), [], True),
    ],
)
def test_service_transitions_and_their_hooks(
    before: Before, after: EntitlementView | None, hooks: list[Hook], on: bool
) -> None:
    transition = service_transition(before, after)
    assert list(transition.hooks) == hooks
    assert transition.service_enabled is on
    assert transition.service_plan == (after.plan if on and after else None)


def test_renewal_and_offer_end_hooks_need_their_event_and_a_real_change() -> None:
    before = Before(ACTIVE, True, "basic", offer_end_time=T0, offer="o-1")
    renewed = view(ACTIVE, offer_end_time=T0 + timedelta(days=30), offer="o-1")
    assert service_transition(before, renewed, event_type="ENTITLEMENT_RENEWED").hooks == (
        Hook.ENTITLEMENT_RENEWED,
    )
    assert service_transition(before, renewed).hooks == ()
    unchanged = view(ACTIVE, offer_end_time=T0, offer="o-1")
    assert service_transition(before, unchanged, event_type="ENTITLEMENT_RENEWED").hooks == ()
    ended = view(ACTIVE, offer_end_time=T0, offer="o-2")
    assert service_transition(before, ended, event_type="ENTITLEMENT_OFFER_ENDED").hooks == (
        Hook.ENTITLEMENT_OFFER_ENDED,
    )


def test_an_offer_ending_with_no_new_offer_raises_offer_ended_before_cancelled() -> None:
    """OFFER_ENDED finding the order cancelled at its offer's end (same offer, same end):
    `entitlement.offer_ended` then `entitlement.cancelled`; an end still ahead raises nothing."""
    before = Before(ACTIVE, True, "basic", offer_end_time=T0, offer="o-1")
    cancelled = view(CANCELLED, offer_end_time=T0, offer="o-1", update_time=T0)
    assert service_transition(before, cancelled, event_type="ENTITLEMENT_OFFER_ENDED").hooks == (
        Hook.ENTITLEMENT_OFFER_ENDED,
        Hook.ENTITLEMENT_CANCELLED,
    )
    awaiting = view(PENDING_PLAN_CHANGE_APPROVAL, offer_end_time=T0, offer="o-1", update_time=T0)
    assert service_transition(before, awaiting, event_type="ENTITLEMENT_OFFER_ENDED").hooks == (
        Hook.ENTITLEMENT_OFFER_ENDED,
    )
    ahead = view(ACTIVE, offer_end_time=T0, offer="o-1", update_time=T0 - timedelta(days=1))
    assert service_transition(before, ahead, event_type="ENTITLEMENT_OFFER_ENDED").hooks == ()


@pytest.mark.parametrize(
    ("policy", "signed_up", "expected"),
    [
        ("auto", False, Decision.APPROVE),
        ("signup", False, Decision.WAIT),
        ("signup", True, Decision.APPROVE),
        ("manual", True, Decision.WAIT),
    ],
)
def test_approval_policies(policy: str, signed_up: bool, expected: Decision) -> None:
    assert account_decision(policy, signup_state="PENDING", signed_up=signed_up) is expected
    waiting = view(ACTIVATION_REQUESTED)
    assert entitlement_decision(policy, waiting, signed_up=signed_up) is expected


def test_nothing_to_decide_once_decided() -> None:
    assert account_decision("auto", signup_state="APPROVED", signed_up=True) is Decision.NOTHING
    assert account_decision("auto", signup_state="REJECTED", signed_up=True) is Decision.NOTHING
    approved = view(ACTIVATION_REQUESTED, new_offer_start_time=T0)
    assert entitlement_decision("auto", approved, signed_up=True) is Decision.NOTHING
    assert entitlement_decision("auto", view(ACTIVE), signed_up=True) is Decision.NOTHING


def test_plan_change_policies() -> None:
    pending = view(PENDING_PLAN_CHANGE_APPROVAL, new_pending_plan="pro")
    assert plan_change_decision("auto", pending) is Decision.APPROVE
    assert plan_change_decision("manual", pending) is Decision.WAIT
    assert plan_change_decision("auto", view(ACTIVE)) is Decision.NOTHING
