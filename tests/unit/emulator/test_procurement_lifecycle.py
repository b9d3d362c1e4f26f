"""Customer actions and the clock: each transition and the notification it publishes (ref 2.4)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace_emulator.errors import FailedPrecondition, InvalidArgument, NotFound
from marketplace_emulator.procurement.customer import OfferTerms
from tests.unit.emulator.procurement_support import DAY, PROVIDER, START, make_world


def test_every_notification_has_a_unique_event_id_and_the_documented_shape() -> None:
    world = make_world()
    entitlement = world.active()
    world.backend.change_plan(PROVIDER, entitlement.id, "pro")
    world.backend.cancel_plan_change(PROVIDER, entitlement.id)
    world.backend.cancel(PROVIDER, entitlement.id)
    payloads = world.payloads()
    assert len({p["eventId"] for p in payloads}) == len(payloads) == 3
    for payload in payloads:
        assert payload["providerId"] == PROVIDER
        assert set(payload) == {"eventId", "eventType", "providerId", "entitlement"}
        assert payload["entitlement"]["id"] == entitlement.id
        assert payload["entitlement"]["updateTime"].endswith("Z")


def test_an_existing_account_is_reused_and_not_announced_again() -> None:
    world = make_world()
    first = world.buy(account_id="acct-1")
    second = world.buy("pro", account_id="acct-1")
    assert first.account_id == second.account_id == "acct-1"
    assert world.events().count("ACCOUNT_ACTIVE") == 1


def test_usage_billed_plans_get_a_project_number_usage_reporting_id() -> None:
    world = make_world()
    world.product("mixed")
    billed = world.buy("basic", "mixed")
    flat = world.buy("flat", "mixed")
    given = world.buy("basic", usage_reporting_id="project_number:42")
    assert billed.usage_reporting_id.startswith("project_number:")
    assert billed.to_json()["consumers"] == [
        {"project": "projects/" + billed.usage_reporting_id.split(":")[1]}
    ]
    assert "usageReportingId" not in flat.to_json()
    assert given.usage_reporting_id == "project_number:42"


def test_unknown_products_and_plans_are_invalid() -> None:
    world = make_world()
    with pytest.raises(InvalidArgument, match="Unknown product"):
        world.buy("basic", "nope")
    with pytest.raises(InvalidArgument, match="Unknown plan"):
        world.buy("gold")


def test_auto_approved_products_announce_the_accepted_offer_then_activate() -> None:
    world = make_world()
    world.product("auto", autoApprove=True, accountNotifications="creation")
    entitlement = world.buy("basic", "auto")
    assert world.events() == ["ACCOUNT_ACTIVE", "ENTITLEMENT_OFFER_ACCEPTED", "ENTITLEMENT_ACTIVE"]
    accepted = world.payloads()[1]["entitlement"]
    assert accepted["newOfferStartTime"] == "2030-01-01T00:00:00Z"
    assert accepted["newOfferEndTime"] == "2030-01-31T00:00:00Z"
    assert accepted["newPendingOfferDuration"] == "P1M"
    assert world.get(entitlement).state == "ENTITLEMENT_ACTIVE"


def test_an_offer_starting_later_activates_at_its_start_time() -> None:
    world = make_world()
    world.product("auto", autoApprove=True)
    start = START + timedelta(days=3)
    entitlement = world.buy("basic", "auto", offer=OfferTerms(start_time=start))
    assert world.get(entitlement).state == "ENTITLEMENT_ACTIVATION_REQUESTED"
    assert "/privateOffers/" in entitlement.offer
    world.advance(3 * DAY)
    got = world.get(entitlement)
    assert got.state == "ENTITLEMENT_ACTIVE"
    assert got.activated_at == start


def test_plan_change_requests_approval_and_can_be_withdrawn() -> None:
    world = make_world()
    entitlement = world.active()
    world.backend.change_plan(PROVIDER, entitlement.id, "pro")
    assert world.payloads()[-1]["entitlement"]["newPlan"] == "pro"
    got = world.get(entitlement)
    assert (got.state, got.new_pending_plan) == ("ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL", "pro")
    world.backend.cancel_plan_change(PROVIDER, entitlement.id)
    assert world.get(entitlement).state == "ENTITLEMENT_ACTIVE"
    assert world.events() == [
        "ENTITLEMENT_PLAN_CHANGE_REQUESTED",
        "ENTITLEMENT_PLAN_CHANGE_CANCELLED",
    ]


def test_plan_change_is_refused_before_activation_and_to_the_same_plan() -> None:
    world = make_world()
    waiting = world.buy()
    with pytest.raises(FailedPrecondition):
        world.backend.change_plan(PROVIDER, waiting.id, "pro")
    active = world.active()
    with pytest.raises(FailedPrecondition, match="already on plan"):
        world.backend.change_plan(PROVIDER, active.id, "basic")


def test_auto_approved_plan_changes_apply_without_a_request() -> None:
    world = make_world()
    world.product("auto", autoApprove=True)
    entitlement = world.buy("basic", "auto")
    world.sink.clear()
    world.backend.change_plan(PROVIDER, entitlement.id, "pro")
    assert world.events() == ["ENTITLEMENT_PLAN_CHANGED"]
    assert world.get(entitlement).plan == "pro"


def test_cancel_at_term_end_then_the_clock_completes_it() -> None:
    world = make_world()
    entitlement = world.active()
    world.backend.cancel(PROVIDER, entitlement.id, at_term_end=True)
    pending = world.get(entitlement)
    assert pending.state == "ENTITLEMENT_PENDING_CANCELLATION"
    assert pending.to_json()["subscriptionEndTime"] == "2030-01-31T00:00:00Z"
    world.advance(30 * DAY)
    done = world.get(entitlement)
    assert (done.state, done.cancellation_reason) == ("ENTITLEMENT_CANCELLED", "user-cancelled")
    assert done.to_json()["updateTime"] == "2030-01-31T00:00:00Z"
    assert world.events() == ["ENTITLEMENT_PENDING_CANCELLATION", "ENTITLEMENT_CANCELLED"]


def test_the_products_cancellation_setting_is_the_default() -> None:
    world = make_world()
    world.product("later", cancellation="termEnd")
    entitlement = world.active(product="later")
    world.backend.cancel(PROVIDER, entitlement.id)
    assert world.get(entitlement).state == "ENTITLEMENT_PENDING_CANCELLATION"
    immediate = world.active()
    world.backend.cancel(PROVIDER, immediate.id)
    assert world.get(immediate).state == "ENTITLEMENT_CANCELLED"


def test_cancelling_before_activation_aborts_the_purchase() -> None:
    world = make_world()
    entitlement = world.buy()
    world.backend.cancel(PROVIDER, entitlement.id)
    got = world.get(entitlement)
    assert (got.state, got.cancellation_reason) == ("ENTITLEMENT_CANCELLED", "user-aborted")
    assert "offerEndTime" not in got.to_json()
    with pytest.raises(FailedPrecondition):
        world.backend.cancel(PROVIDER, entitlement.id)


def test_a_pending_cancellation_can_be_reverted() -> None:
    world = make_world()
    entitlement = world.active()
    with pytest.raises(FailedPrecondition):
        world.backend.revert_cancellation(PROVIDER, entitlement.id)
    world.backend.cancel(PROVIDER, entitlement.id, at_term_end=True)
    world.backend.revert_cancellation(PROVIDER, entitlement.id)
    got = world.get(entitlement)
    assert got.state == "ENTITLEMENT_ACTIVE"
    assert "subscriptionEndTime" not in got.to_json()
    assert world.events()[-1] == "ENTITLEMENT_CANCELLATION_REVERTED"
    world.advance(30 * DAY)
    assert world.get(entitlement).state == "ENTITLEMENT_ACTIVE"


def test_terms_renew_on_the_clock_and_on_demand() -> None:
    world = make_world()
    entitlement = world.active()
    world.advance(65 * DAY)
    assert world.events() == ["ENTITLEMENT_RENEWED", "ENTITLEMENT_RENEWED"]
    assert (
        world.get(entitlement).to_json()["offerEndTime"] == "2030-04-01T00:00:00Z"
    )  # day 90: renewed at 30 and 60
    world.backend.renew(PROVIDER, entitlement.id)
    assert world.get(entitlement).offer_end_time == START + timedelta(days=65 + 30)
    assert world.events()[-1] == "ENTITLEMENT_RENEWED"


def test_an_offer_with_an_end_date_ends_and_carries_on_at_list_price() -> None:
    world = make_world()
    world.product("auto", autoApprove=True)
    end = START + timedelta(days=10)
    entitlement = world.buy("basic", "auto", offer=OfferTerms(end_time=end))
    assert "offerDuration" not in world.get(entitlement).to_json()
    world.sink.clear()
    world.advance(10 * DAY)
    got = world.get(entitlement)
    assert world.events() == ["ENTITLEMENT_OFFER_ENDED"]
    assert world.payloads()[0]["entitlement"]["newOfferEndTime"] == "2030-01-11T00:00:00Z"
    assert got.state == "ENTITLEMENT_ACTIVE"
    assert "/standardOffers/" in got.offer
    assert got.offer_history == [entitlement.offer, got.offer]


def test_end_offer_can_cancel_the_entitlement() -> None:
    world = make_world()
    entitlement = world.active()
    world.backend.end_offer(PROVIDER, entitlement.id, cancel=True)
    got = world.get(entitlement)
    assert (got.state, got.cancellation_reason) == ("ENTITLEMENT_CANCELLED", "expired")
    assert world.events() == ["ENTITLEMENT_OFFER_ENDED", "ENTITLEMENT_CANCELLED"]


def test_only_a_cancelled_entitlement_can_be_deleted_and_then_it_is_gone() -> None:
    world = make_world()
    entitlement = world.active()
    with pytest.raises(FailedPrecondition):
        world.backend.delete_entitlement(PROVIDER, entitlement.id)
    world.backend.cancel(PROVIDER, entitlement.id)
    world.backend.delete_entitlement(PROVIDER, entitlement.id)
    assert world.events()[-1] == "ENTITLEMENT_DELETED"
    with pytest.raises(NotFound):
        world.get(entitlement)


def test_deleting_an_account_cancels_and_deletes_its_entitlements_first() -> None:
    world = make_world()
    entitlement = world.active()
    world.backend.delete_account(PROVIDER, entitlement.account_id)
    assert world.events() == ["ENTITLEMENT_CANCELLED", "ENTITLEMENT_DELETED", "ACCOUNT_DELETED"]
    assert world.payloads()[-1]["account"]["id"] == entitlement.account_id
    with pytest.raises(NotFound):
        world.backend.get_account(PROVIDER, entitlement.account_id)
    with pytest.raises(NotFound):
        world.get(entitlement)


def test_a_long_clock_jump_applies_transitions_in_time_order() -> None:
    world = make_world()
    world.product("slow", planChange="termEnd")
    first = world.active(product="slow")
    world.backend.change_plan(PROVIDER, first.id, "pro")
    world.backend.approve_plan_change(PROVIDER, first.id, "pro")
    world.clock.advance(5 * DAY)
    second = world.active()
    world.backend.cancel(PROVIDER, second.id, at_term_end=True)
    world.sink.clear()
    world.advance(40 * DAY)
    order = [(p["eventType"], p["entitlement"]["id"]) for p in world.payloads()]
    assert order == [
        ("ENTITLEMENT_PLAN_CHANGED", first.id),  # day 30
        ("ENTITLEMENT_CANCELLED", second.id),  # day 35
    ]


def test_reset_forgets_everything() -> None:
    world = make_world()
    entitlement = world.active()
    world.backend.reset()
    with pytest.raises(NotFound):
        world.get(entitlement)
    assert world.backend.list_accounts(PROVIDER) == ([], None)
