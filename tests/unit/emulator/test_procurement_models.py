"""The provider's side of the Procurement state machine (reference 1.4-1.7, 6)."""

from __future__ import annotations

import pytest

from marketplace_emulator.errors import FailedPrecondition, InvalidArgument, NotFound, Unimplemented
from tests.unit.emulator.procurement_support import DAY, PROVIDER, START, make_world


def test_purchase_creates_an_active_account_with_a_pending_signup_approval() -> None:
    world = make_world()
    account, entitlement = world.backend.purchase(PROVIDER, "example-product", "basic")
    assert account.state == "ACCOUNT_ACTIVE"
    assert account.approvals["signup"].state == "PENDING"
    assert entitlement.state == "ENTITLEMENT_ACTIVATION_REQUESTED"
    assert entitlement.account_id == account.id
    assert world.events() == ["ACCOUNT_ACTIVE", "ENTITLEMENT_CREATION_REQUESTED"]


def test_approving_the_account_without_a_name_grants_signup_and_truncates_the_reason() -> None:
    world = make_world()
    entitlement = world.buy()
    world.backend.approve_account(PROVIDER, entitlement.account_id, reason="é" * 200)
    approval = world.backend.get_account(PROVIDER, entitlement.account_id).approvals["signup"]
    assert approval.state == "APPROVED"
    assert len(approval.reason.encode()) <= 256
    assert approval.reason == "é" * 128


def test_an_unknown_approval_name_is_invalid() -> None:
    world = make_world()
    entitlement = world.buy()
    with pytest.raises(InvalidArgument, match="no approval named 'billing'"):
        world.backend.approve_account(PROVIDER, entitlement.account_id, approval_name="billing")


def test_a_rejected_signup_can_be_approved_later() -> None:
    world = make_world()
    account_id = world.buy().account_id
    world.backend.reject_account(PROVIDER, account_id, reason="no")
    assert world.backend.get_account(PROVIDER, account_id).signup_state == "REJECTED"
    world.backend.approve_account(PROVIDER, account_id, approval_name="signup")
    assert world.backend.get_account(PROVIDER, account_id).signup_state == "APPROVED"


def test_entitlement_approval_before_account_approval_is_a_failed_precondition() -> None:
    world = make_world()
    entitlement = world.buy()
    with pytest.raises(FailedPrecondition, match="signup approval is PENDING"):
        world.backend.approve_entitlement(PROVIDER, entitlement.id)


def test_approve_activates_at_once_without_a_delay() -> None:
    world = make_world()
    entitlement = world.buy()
    world.backend.approve_account(PROVIDER, entitlement.account_id)
    world.backend.approve_entitlement(PROVIDER, entitlement.id)
    got = world.get(entitlement)
    assert got.state == "ENTITLEMENT_ACTIVE"
    assert got.offer_end_time is not None
    assert (got.offer_end_time - START).days == 30
    assert world.events()[-1] == "ENTITLEMENT_ACTIVE"


def test_approve_activates_after_the_configured_delay_driven_by_the_clock() -> None:
    world = make_world(activation_delay_seconds=60)
    entitlement = world.buy()
    world.backend.approve_account(PROVIDER, entitlement.account_id)
    world.backend.approve_entitlement(PROVIDER, entitlement.id)
    pending = world.get(entitlement)
    assert pending.state == "ENTITLEMENT_ACTIVATION_REQUESTED"
    assert pending.to_json()["newOfferStartTime"] == "2030-01-01T00:01:00Z"
    world.backend.approve_entitlement(PROVIDER, entitlement.id)  # repeating is harmless
    world.clock.advance(59)
    assert world.get(entitlement).state == "ENTITLEMENT_ACTIVATION_REQUESTED"
    world.clock.advance(1)
    active = world.get(entitlement)  # lazily applied on access
    assert active.state == "ENTITLEMENT_ACTIVE"
    assert active.to_json()["updateTime"] == "2030-01-01T00:01:00Z"
    assert world.events().count("ENTITLEMENT_ACTIVE") == 1


@pytest.mark.parametrize("state_maker", ["active", "cancelled"])
def test_approve_outside_activation_requested_is_a_failed_precondition(state_maker: str) -> None:
    world = make_world()
    entitlement = world.active()
    if state_maker == "cancelled":
        world.backend.cancel(PROVIDER, entitlement.id)
    with pytest.raises(FailedPrecondition, match="not ENTITLEMENT_ACTIVATION_REQUESTED"):
        world.backend.approve_entitlement(PROVIDER, entitlement.id)
    with pytest.raises(FailedPrecondition):
        world.backend.reject_entitlement(PROVIDER, entitlement.id)


def test_reject_cancels_the_entitlement_with_the_reason() -> None:
    world = make_world()
    entitlement = world.buy()
    world.backend.reject_entitlement(PROVIDER, entitlement.id, reason="x" * 300)
    got = world.get(entitlement)
    assert got.state == "ENTITLEMENT_CANCELLED"
    assert got.cancellation_reason == "x" * 256
    assert world.events()[-1] == "ENTITLEMENT_CANCELLED"


def test_plan_change_approval_needs_the_pending_state_and_the_matching_plan_name() -> None:
    world = make_world()
    entitlement = world.active()
    with pytest.raises(FailedPrecondition, match="PENDING_PLAN_CHANGE_APPROVAL"):
        world.backend.approve_plan_change(PROVIDER, entitlement.id, "pro")
    world.backend.change_plan(PROVIDER, entitlement.id, "pro")
    with pytest.raises(FailedPrecondition, match="does not match the pending plan 'pro'"):
        world.backend.approve_plan_change(PROVIDER, entitlement.id, "basic")
    world.backend.approve_plan_change(PROVIDER, entitlement.id, "pro")
    got = world.get(entitlement)
    assert (got.state, got.plan, got.new_pending_plan) == ("ENTITLEMENT_ACTIVE", "pro", "")
    assert world.payloads()[-1]["eventType"] == "ENTITLEMENT_PLAN_CHANGED"
    assert world.payloads()[-1]["entitlement"]["newPlan"] == "pro"


def test_plan_change_waits_for_the_term_end_when_the_product_says_so() -> None:
    world = make_world()
    world.product("slow", planChange="termEnd", termDays=30)
    entitlement = world.active(product="slow")
    world.backend.change_plan(PROVIDER, entitlement.id, "pro")
    world.backend.approve_plan_change(PROVIDER, entitlement.id, "pro")
    pending = world.get(entitlement)
    assert (pending.state, pending.plan) == ("ENTITLEMENT_PENDING_PLAN_CHANGE", "basic")
    assert pending.to_json()["newOfferStartTime"] == "2030-01-31T00:00:00Z"
    world.advance(30 * DAY)
    changed = world.get(entitlement)
    assert (changed.state, changed.plan) == ("ENTITLEMENT_ACTIVE", "pro")
    assert world.events() == ["ENTITLEMENT_PLAN_CHANGE_REQUESTED", "ENTITLEMENT_PLAN_CHANGED"]
    assert changed.plan_at(START) == "basic"
    assert changed.plan_at(changed.update_time) == "pro"


def test_rejecting_a_plan_change_restores_the_old_plan() -> None:
    world = make_world()
    entitlement = world.active()
    world.backend.change_plan(PROVIDER, entitlement.id, "pro")
    world.backend.reject_plan_change(PROVIDER, entitlement.id, "pro", reason="no")
    got = world.get(entitlement)
    assert (got.state, got.plan, got.new_pending_plan) == ("ENTITLEMENT_ACTIVE", "basic", "")
    assert world.events()[-1] == "ENTITLEMENT_PLAN_CHANGE_CANCELLED"


def test_message_to_user_is_patchable_only_in_two_states_and_cleared_on_state_change() -> None:
    world = make_world()
    entitlement = world.buy()
    world.backend.patch_entitlement(PROVIDER, entitlement.id, "Provisioning, ~5 min")
    assert world.get(entitlement).to_json()["messageToUser"] == "Provisioning, ~5 min"
    world.backend.approve_account(PROVIDER, entitlement.account_id)
    world.backend.approve_entitlement(PROVIDER, entitlement.id)
    assert "messageToUser" not in world.get(entitlement).to_json()
    with pytest.raises(FailedPrecondition, match="update messageToUser"):
        world.backend.patch_entitlement(PROVIDER, entitlement.id, "late")
    world.backend.change_plan(PROVIDER, entitlement.id, "pro")
    world.backend.patch_entitlement(PROVIDER, entitlement.id, "Checking your quota")
    world.backend.reject_plan_change(PROVIDER, entitlement.id, "pro")
    assert world.get(entitlement).message_to_user == ""


def test_reset_puts_signup_back_to_pending_and_cancels_the_accounts_entitlements() -> None:
    world = make_world()
    entitlement = world.active()
    world.backend.reset_account(PROVIDER, entitlement.account_id)
    assert world.backend.get_account(PROVIDER, entitlement.account_id).signup_state == "PENDING"
    assert world.get(entitlement).state == "ENTITLEMENT_CANCELLED"
    assert world.events() == ["ENTITLEMENT_CANCELLED"]


def test_suspend_is_not_yet_supported_but_still_reports_a_missing_entitlement() -> None:
    world = make_world()
    entitlement = world.active()
    with pytest.raises(Unimplemented, match="not yet supported"):
        world.backend.suspend_entitlement(PROVIDER, entitlement.id)
    with pytest.raises(NotFound):
        world.backend.suspend_entitlement(PROVIDER, "nope")


def test_missing_resources_are_not_found() -> None:
    world = make_world()
    with pytest.raises(NotFound, match="accounts/ghost"):
        world.backend.get_account(PROVIDER, "ghost")
    with pytest.raises(NotFound, match="entitlements/ghost"):
        world.backend.get_entitlement(PROVIDER, "ghost")


def test_resources_are_scoped_to_their_provider() -> None:
    world = make_world()
    entitlement = world.buy()
    with pytest.raises(NotFound):
        world.backend.get_entitlement("OTHER", entitlement.id)
    assert world.backend.list_entitlements("OTHER") == ([], None)


def test_list_pages_through_everything_once_with_an_opaque_token() -> None:
    world = make_world()
    ids = {world.buy().id for _ in range(7)}
    seen: list[str] = []
    token = ""
    while True:
        page, next_token = world.backend.list_entitlements(PROVIDER, "", 3, token)
        seen += [e.id for e in page]
        if next_token is None:
            break
        token = next_token
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 7


def test_a_page_token_from_another_query_or_forged_is_invalid() -> None:
    world = make_world()
    for _ in range(3):
        world.buy()
    _, token = world.backend.list_entitlements(PROVIDER, "", 1)
    assert token is not None
    with pytest.raises(InvalidArgument, match="does not belong"):
        world.backend.list_entitlements(PROVIDER, "plan=basic", 1, token)
    with pytest.raises(InvalidArgument, match="Invalid page token"):
        world.backend.list_entitlements(PROVIDER, "", 1, "garbage!")


def test_account_page_size_defaults_to_25_and_is_capped_at_200() -> None:
    world = make_world()
    for _ in range(205):
        world.buy()
    page, token = world.backend.list_accounts(PROVIDER)
    assert (len(page), token is not None) == (25, True)
    page, token = world.backend.list_accounts(PROVIDER, 500)
    assert len(page) == 200
    page, token = world.backend.list_accounts(PROVIDER, 500, token or "")
    assert (len(page), token) == (5, None)
    with pytest.raises(InvalidArgument):
        world.backend.list_accounts(PROVIDER, -1)


def test_list_applies_the_filter() -> None:
    world = make_world()
    basic = world.active("basic")
    world.buy("pro")
    page, _ = world.backend.list_entitlements(PROVIDER, "state=active plan=basic")
    assert [e.id for e in page] == [basic.id]
    with pytest.raises(InvalidArgument, match="unknown attribute"):
        world.backend.list_entitlements(PROVIDER, "colour=red")


def test_service_control_finds_entitlements_by_usage_reporting_id_with_their_periods() -> None:
    world = make_world()
    entitlement = world.active()
    world.advance(DAY)
    world.backend.cancel(PROVIDER, entitlement.id)
    found = world.backend.find_by_usage_reporting_id(entitlement.usage_reporting_id)
    assert [e.id for e in found] == [entitlement.id]
    (period,) = found[0].periods
    assert (period.start, period.plan) == (START, "basic")
    assert period.end is not None
    assert (period.end - START).total_seconds() == DAY
    assert found[0].plan_at(period.end) is None
    world.backend.delete_entitlement(PROVIDER, entitlement.id)
    assert world.backend.find_by_usage_reporting_id(entitlement.usage_reporting_id) == []
    kept = world.backend.find_by_usage_reporting_id(entitlement.usage_reporting_id, True)
    assert [e.id for e in kept] == [entitlement.id]


def test_returned_entitlements_are_snapshots_later_transitions_do_not_change() -> None:
    world = make_world()
    before = world.active()
    world.backend.cancel(PROVIDER, before.id)
    assert before.state == "ENTITLEMENT_ACTIVE"
    assert before.periods[0].end is None
    assert world.get(before).periods[0].end == START
