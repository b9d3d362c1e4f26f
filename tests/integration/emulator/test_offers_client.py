"""Offers as Google describes them, read through Google's discovery client over HTTP: private and
public offers with a duration or an end date, a future start, renewal or not, and what the
notifications and the entitlement carry in each state (discovery document, revision 20251012)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from googleapiclient.errors import HttpError

from marketplace_emulator.clock import parse_rfc3339, rfc3339
from marketplace_emulator.procurement.offers import add_duration
from marketplace_emulator.server import Emulator
from tests.integration.emulator.conftest import PROVIDER

pytestmark = pytest.mark.integration
BASE = f"/emulator/v1/providers/{PROVIDER}"
PARENT = f"providers/{PROVIDER}"
DAY = 86_400
SERVICE = "offers.endpoints.test.cloud.goog"


def end_date(days: int) -> str:
    return rfc3339((datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0))


def put_product(control: httpx.Client, product_id: str = "offers", **settings: Any) -> None:
    offers = {
        "two-years": {
            "plan": "basic",
            "duration": "P2Y",
            "quoteExternalName": "quotes/q-17",
            "entitlementBenefitIds": ["benefit-1"],
        },
        "until-june": {"plan": "pro", "endTime": end_date(200)},
        "pro-1y": {"plan": "pro", "duration": "P1Y"},
        "usage-private": {"plan": "metered", "endTime": end_date(10)},
        "no-renewal": {"plan": "basic", "duration": "P1M", "autoRenew": False},
    }
    body = {
        "serviceName": SERVICE,
        "plans": {
            "basic": {},
            "pro": {},
            "metered": {"usageBilled": True, "metrics": ["metered_requests"]},
        },
        "offers": offers,
        **settings,
    }
    response = control.put(f"{BASE}/products/{product_id}", json=body)
    assert response.status_code == 200, response.text


def buy(control: httpx.Client, product: str = "offers", **body: Any) -> dict[str, Any]:
    response = control.post(f"{BASE}/purchases", json={"product": product, **body})
    assert response.status_code == 201, response.text
    bought: dict[str, Any] = response.json()
    return bought


def notifications(control: httpx.Client) -> list[dict[str, Any]]:
    listed = control.get("/emulator/v1/notifications", params={"provider": PROVIDER}).json()
    found: list[dict[str, Any]] = listed["notifications"]
    return found


def last(control: httpx.Client, event_type: str) -> dict[str, Any]:
    found = [n for n in notifications(control) if n["eventType"] == event_type]
    assert found, f"no {event_type} among {[n['eventType'] for n in notifications(control)]}"
    body: dict[str, Any] = found[-1]["entitlement"]
    return body


def get(api: Any, bought: dict[str, Any]) -> dict[str, Any]:
    entitlement: dict[str, Any] = (
        api.entitlements().get(name=bought["entitlement"]["name"]).execute()
    )
    return entitlement


def approve(api: Any, bought: dict[str, Any], **body: Any) -> None:
    api.accounts().approve(
        name=bought["account"]["name"], body={"approvalName": "signup"}
    ).execute()
    api.entitlements().approve(name=bought["entitlement"]["name"], body=body).execute()


def advance(control: httpx.Client, seconds: float) -> None:
    response = control.post("/emulator/v1/clock:advance", json={"seconds": seconds})
    assert response.status_code == 200, response.text


def change_plan(control: httpx.Client, bought: dict[str, Any], **body: Any) -> None:
    eid = bought["entitlement"]["name"].rsplit("/", 1)[1]
    response = control.post(f"{BASE}/entitlements/{eid}:changePlan", json=body)
    assert response.status_code == 200, response.text


def test_a_private_offer_with_a_duration_is_announced_with_its_duration_only(
    control: httpx.Client, procurement_api: Any
) -> None:
    """CREATION_REQUESTED of a P2Y offer carries newPendingOfferDuration and no newOfferEndTime;
    the entitlement shows the private offer, its duration, quote and benefit ids; once active,
    offerEndTime is two calendar years after activation."""
    put_product(control)
    bought = buy(control, offerId="two-years", inputProperties={"seats": 12, "team": "blue"})
    created = last(control, "ENTITLEMENT_CREATION_REQUESTED")
    assert created["newPendingOfferDuration"] == "P2Y"
    assert "newOfferEndTime" not in created
    waiting = get(procurement_api, bought)
    assert "/privateOffers/two-years" in waiting["offer"]
    assert waiting["plan"] == "basic"
    assert waiting["offerDuration"] == "P2Y"
    assert "offerEndTime" not in waiting  # not approved, no end date: empty
    assert waiting["quoteExternalName"] == "quotes/q-17"
    assert waiting["entitlementBenefitIds"] == ["benefit-1"]
    assert waiting["inputProperties"] == {"seats": 12, "team": "blue"}
    approve(procurement_api, bought)
    active = get(procurement_api, bought)
    assert active["state"] == "ENTITLEMENT_ACTIVE"
    started = parse_rfc3339(active["updateTime"])
    assert active["offerEndTime"] == rfc3339(add_duration(started, "P2Y"))


def test_an_end_dated_offer_is_announced_with_its_end_only(
    control: httpx.Client, procurement_api: Any
) -> None:
    """CREATION_REQUESTED of an offer with an end date carries newOfferEndTime and no duration;
    before approval the entitlement already shows offerEndTime and no offerDuration."""
    put_product(control)
    bought = buy(control, offerId="until-june")
    created = last(control, "ENTITLEMENT_CREATION_REQUESTED")
    assert "newPendingOfferDuration" not in created
    waiting = get(procurement_api, bought)
    assert created["newOfferEndTime"] == waiting["offerEndTime"]
    assert "offerDuration" not in waiting


def test_the_duration_field_can_take_the_spelling_of_googles_older_pages(
    control: httpx.Client,
) -> None:
    """offerDurationField "newOfferDuration": the same value under the other documented name."""
    put_product(control, offerDurationField="newOfferDuration")
    buy(control, offerId="two-years")
    created = last(control, "ENTITLEMENT_CREATION_REQUESTED")
    assert created["newOfferDuration"] == "P2Y"
    assert "newPendingOfferDuration" not in created


def test_an_accepted_offer_starting_later_activates_at_its_start(
    control: httpx.Client, procurement_api: Any
) -> None:
    """autoApprove: ENTITLEMENT_OFFER_ACCEPTED carries the future newOfferStartTime, the end and
    the duration; the entitlement waits in ACTIVATION_REQUESTED until the start."""
    put_product(control, autoApprove=True)
    start = end_date(3)
    bought = buy(control, plan="basic", offer={"startTime": start, "duration": "P1Y"})
    accepted = last(control, "ENTITLEMENT_OFFER_ACCEPTED")
    assert accepted["newOfferStartTime"] == start
    assert accepted["newPendingOfferDuration"] == "P1Y"
    assert accepted["newOfferEndTime"] == rfc3339(add_duration(parse_rfc3339(start), "P1Y"))
    assert get(procurement_api, bought)["state"] == "ENTITLEMENT_ACTIVATION_REQUESTED"
    advance(control, 3 * DAY + 60)
    assert get(procurement_api, bought)["state"] == "ENTITLEMENT_ACTIVE"


@pytest.mark.parametrize("plan_change", ["immediate", "termEnd"])
def test_pending_plan_changes_show_the_new_offers_end_or_else_its_duration(
    control: httpx.Client, procurement_api: Any, plan_change: str
) -> None:
    """In both pending-plan-change states: an end-dated new offer gives newOfferEndTime and no
    newPendingOfferDuration; a new offer with a duration gives newPendingOfferDuration only."""
    put_product(control, planChange=plan_change)
    bought = buy(control, plan="basic")
    approve(procurement_api, bought)
    change_plan(control, bought, offerId="until-june")
    pending = get(procurement_api, bought)
    assert pending["state"] == "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"
    assert "/privateOffers/until-june" in pending["newPendingOffer"]
    assert parse_rfc3339(pending["newOfferEndTime"]) > datetime.now(UTC) + timedelta(days=150)
    assert "newPendingOfferDuration" not in pending
    procurement_api.entitlements().approvePlanChange(
        name=bought["entitlement"]["name"], body={"pendingPlanName": "pro"}
    ).execute()
    changed = get(procurement_api, bought)
    if plan_change == "termEnd":
        assert changed["state"] == "ENTITLEMENT_PENDING_PLAN_CHANGE"
        assert changed["newOfferEndTime"] == pending["newOfferEndTime"]
        assert "newPendingOfferDuration" not in changed
        advance(control, 31 * DAY)
        changed = get(procurement_api, bought)
    assert (changed["state"], changed["plan"]) == ("ENTITLEMENT_ACTIVE", "pro")
    assert changed["offerEndTime"] == pending["newOfferEndTime"]  # the new offer's end date
    assert "newOfferEndTime" not in changed
    change_plan(control, bought, offerId="two-years")
    again = get(procurement_api, bought)
    assert again["newPendingOfferDuration"] == "P2Y"
    assert "newOfferEndTime" not in again


def test_a_usage_based_private_offer_ending_during_a_plan_change_shows_its_actual_end(
    control: httpx.Client, procurement_api: Any
) -> None:
    """A usage-based private offer whose term ends while a plan change awaits approval keeps its
    ACTUAL end (in the past) as offerEndTime; approving the change starts the new offer."""
    put_product(control)
    bought = buy(control, offerId="usage-private")
    approve(procurement_api, bought)
    end = get(procurement_api, bought)["offerEndTime"]
    change_plan(control, bought, plan="basic")
    advance(control, 12 * DAY)
    pending = get(procurement_api, bought)
    assert pending["state"] == "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"
    assert pending["offerEndTime"] == end
    assert parse_rfc3339(end) < datetime.now(UTC) + timedelta(days=12)  # in the emulator's past
    assert last(control, "ENTITLEMENT_OFFER_ENDED")["newOfferEndTime"] == end
    procurement_api.entitlements().approvePlanChange(
        name=bought["entitlement"]["name"], body={"pendingPlanName": "basic"}
    ).execute()
    changed = get(procurement_api, bought)
    assert (changed["state"], changed["plan"]) == ("ENTITLEMENT_ACTIVE", "basic")
    assert parse_rfc3339(changed["offerEndTime"]) > parse_rfc3339(changed["updateTime"])
    assert "/standardOffers/" in changed["offer"]


def test_an_offer_that_does_not_renew_ends_and_cancels_at_its_term_end(
    control: httpx.Client, procurement_api: Any
) -> None:
    """autoRenew false on a flat plan: at the term end ENTITLEMENT_OFFER_ENDED, then CANCELLED
    with cancellationReason "expired"."""
    put_product(control)
    bought = buy(control, offerId="no-renewal")
    approve(procurement_api, bought)
    advance(control, 32 * DAY)
    ended = get(procurement_api, bought)
    assert (ended["state"], ended["cancellationReason"]) == ("ENTITLEMENT_CANCELLED", "expired")
    types = [n["eventType"] for n in notifications(control)]
    assert types[-2:] == ["ENTITLEMENT_OFFER_ENDED", "ENTITLEMENT_CANCELLED"]


def test_entitlements_list_filters_on_the_quote(
    control: httpx.Client, procurement_api: Any
) -> None:
    """`quote_external_name="quotes/q-17"` finds the entitlement bought with that quote only."""
    put_product(control)
    quoted = buy(control, offerId="two-years")
    buy(control, plan="basic")
    found = (
        procurement_api.entitlements()
        .list(parent=PARENT, filter='quote_external_name="quotes/q-17"')
        .execute()
    )
    assert [e["name"] for e in found["entitlements"]] == [quoted["entitlement"]["name"]]
    others = (
        procurement_api.entitlements()
        .list(parent=PARENT, filter='quote_external_name!="quotes/q-17"')
        .execute()
    )
    assert quoted["entitlement"]["name"] not in [e["name"] for e in others["entitlements"]]


def test_the_full_account_view_adds_the_reseller_parent_billing_account(
    control: httpx.Client, procurement_api: Any
) -> None:
    """resellerParentBillingAccount only with view=ACCOUNT_VIEW_FULL; inputProperties always."""
    bought = buy(
        control,
        product="example-product",
        plan="basic",
        resellerParentBillingAccount="billingAccounts/0A1B2C-3D4E5F-6A7B8C",
        accountInputProperties={"region": "eu"},
    )
    name = bought["account"]["name"]
    full = procurement_api.accounts().get(name=name, view="ACCOUNT_VIEW_FULL").execute()
    assert full["resellerParentBillingAccount"] == "billingAccounts/0A1B2C-3D4E5F-6A7B8C"
    assert full["inputProperties"] == {"region": "eu"}
    for view in ("ACCOUNT_VIEW_BASIC", None):
        basic = procurement_api.accounts().get(name=name, view=view).execute()
        assert "resellerParentBillingAccount" not in basic
    listed = procurement_api.accounts().list(parent=PARENT).execute()["accounts"]
    assert all("resellerParentBillingAccount" not in a for a in listed)


def test_disabling_billing_cancels_the_accounts_orders_as_billing_disabled(
    control: httpx.Client, procurement_api: Any
) -> None:
    """The customer disables billing: each order of the account is CANCELLED "billing-disabled"."""
    first = buy(control, product="example-product", plan="basic")
    account_id = first["account"]["name"].rsplit("/", 1)[1]
    second = buy(control, product="example-product", plan="pro", account=account_id)
    approve(procurement_api, first)
    response = control.post(f"{BASE}/accounts/{account_id}:disableBilling", json={})
    assert response.status_code == 200, response.text
    for bought in (first, second):
        ended = get(procurement_api, bought)
        assert ended["state"] == "ENTITLEMENT_CANCELLED"
        assert ended["cancellationReason"] == "billing-disabled"


def test_a_migration_cancels_the_old_order_as_migrated_once_the_new_one_is_active(
    control: httpx.Client, procurement_api: Any, emu: Emulator
) -> None:
    """migrate: a new entitlement of the other product awaits approval; approved with
    entitlementMigrated, it becomes ACTIVE and the old one is CANCELLED "migrated"."""
    put_product(control)
    old = buy(control, product="example-product", plan="basic")
    approve(procurement_api, old)
    old_id = old["entitlement"]["name"].rsplit("/", 1)[1]
    response = control.post(
        f"{BASE}/entitlements/{old_id}:migrate", json={"product": "offers", "plan": "pro"}
    )
    assert response.status_code == 200, response.text
    new = {"account": old["account"], "entitlement": response.json()}
    assert get(procurement_api, old)["state"] == "ENTITLEMENT_ACTIVE"  # no lapse in service
    with pytest.raises(HttpError) as refused:
        procurement_api.entitlements().approve(
            name=new["entitlement"]["name"],
            body={"entitlementMigrated": f"providers/{PROVIDER}/entitlements/ghost"},
        ).execute()
    assert refused.value.resp.status == 400
    procurement_api.entitlements().approve(
        name=new["entitlement"]["name"], body={"entitlementMigrated": old["entitlement"]["name"]}
    ).execute()
    assert get(procurement_api, new)["state"] == "ENTITLEMENT_ACTIVE"
    moved = get(procurement_api, old)
    assert (moved["state"], moved["cancellationReason"]) == ("ENTITLEMENT_CANCELLED", "migrated")
