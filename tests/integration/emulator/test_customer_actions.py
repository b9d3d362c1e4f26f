"""Customer actions, the clock and the catalog over the control API, with the notifications each
transition publishes (listed by `GET /emulator/v1/notifications`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from marketplace_emulator.server import Emulator
from tests.integration.emulator.conftest import PROVIDER, purchase

pytestmark = pytest.mark.integration
BASE = f"/emulator/v1/providers/{PROVIDER}"
DAY = 86_400


def events(control: httpx.Client) -> list[str]:
    listed = control.get("/emulator/v1/notifications", params={"provider": PROVIDER}).json()
    return [n["eventType"] for n in listed["notifications"]]


def act(control: httpx.Client, entitlement: str, verb: str, **body: Any) -> dict[str, Any]:
    response = control.post(f"{BASE}/entitlements/{entitlement}:{verb}", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def activate(control: httpx.Client, plan: str = "basic") -> str:
    bought = purchase(control, plan)
    account, name = bought["account"]["name"], bought["entitlement"]["name"]
    assert control.post(f"/v1/{account}:approve", json={}).status_code == 200
    assert control.post(f"/v1/{name}:approve", json={}).status_code == 200
    return str(name.rsplit("/", 1)[1])


def test_purchase_answers_the_account_and_entitlement_resources(control: httpx.Client) -> None:
    bought = purchase(control, account="customer-7")
    assert bought["account"]["name"] == f"providers/{PROVIDER}/accounts/customer-7"
    assert bought["entitlement"]["state"] == "ENTITLEMENT_ACTIVATION_REQUESTED"
    assert bought["entitlement"]["usageReportingId"].startswith("project_number:")
    assert events(control) == ["ACCOUNT_ACTIVE", "ENTITLEMENT_CREATION_REQUESTED"]


def test_every_customer_action_and_its_notification(control: httpx.Client) -> None:
    """changePlan, cancelPlanChange, cancel, revertCancellation, renew, endOffer, delete."""
    eid = activate(control)
    assert act(control, eid, "changePlan", plan="pro")["newPendingPlan"] == "pro"
    assert act(control, eid, "cancelPlanChange")["state"] == "ENTITLEMENT_ACTIVE"
    assert (
        act(control, eid, "cancel", atTermEnd=True)["state"] == "ENTITLEMENT_PENDING_CANCELLATION"
    )
    assert act(control, eid, "revertCancellation")["state"] == "ENTITLEMENT_ACTIVE"
    assert act(control, eid, "renew")["state"] == "ENTITLEMENT_ACTIVE"
    assert act(control, eid, "endOffer")["state"] == "ENTITLEMENT_ACTIVE"
    assert act(control, eid, "cancel")["state"] == "ENTITLEMENT_CANCELLED"
    assert act(control, eid, "delete") == {}
    assert events(control) == [
        "ACCOUNT_ACTIVE",
        "ENTITLEMENT_CREATION_REQUESTED",
        "ENTITLEMENT_ACTIVE",
        "ENTITLEMENT_PLAN_CHANGE_REQUESTED",
        "ENTITLEMENT_PLAN_CHANGE_CANCELLED",
        "ENTITLEMENT_PENDING_CANCELLATION",
        "ENTITLEMENT_CANCELLATION_REVERTED",
        "ENTITLEMENT_RENEWED",
        "ENTITLEMENT_OFFER_ENDED",
        "ENTITLEMENT_CANCELLED",
        "ENTITLEMENT_DELETED",
    ]
    assert control.get(f"/v1/providers/{PROVIDER}/entitlements/{eid}").status_code == 404


def test_a_wrong_state_customer_action_is_a_failed_precondition(control: httpx.Client) -> None:
    eid = purchase(control)["entitlement"]["name"].rsplit("/", 1)[1]
    response = control.post(f"{BASE}/entitlements/{eid}:delete", json={})
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert "ENTITLEMENT_ACTIVATION_REQUESTED" in response.json()["error"]["message"]


def test_deleting_an_account(control: httpx.Client) -> None:
    bought = purchase(control)
    account_id = bought["account"]["name"].rsplit("/", 1)[1]
    assert control.post(f"{BASE}/accounts/{account_id}:delete", json={}).json() == {}
    assert events(control)[-1] == "ACCOUNT_DELETED"
    assert control.get(f"/v1/{bought['account']['name']}").status_code == 404


def test_clock_advance_ends_terms_and_publishes_in_order(control: httpx.Client) -> None:
    eid = activate(control)
    act(control, eid, "cancel", atTermEnd=True)
    clock = control.post("/emulator/v1/clock:advance", json={"seconds": 31 * DAY}).json()
    assert "nextTransitionTime" not in clock
    got = control.get(f"/v1/providers/{PROVIDER}/entitlements/{eid}").json()
    assert got["state"] == "ENTITLEMENT_CANCELLED"
    assert events(control)[-2:] == ["ENTITLEMENT_PENDING_CANCELLATION", "ENTITLEMENT_CANCELLED"]


def test_products_can_be_listed_and_replaced(control: httpx.Client) -> None:
    listed = control.get(f"{BASE}/products").json()["products"]
    assert set(listed["example-product"]["plans"]) == {"basic", "pro"}
    product = {
        "serviceName": "auto.endpoints.test.cloud.goog",
        "autoApprove": True,
        "planChange": "termEnd",
        "cancellation": "termEnd",
        "termDays": 365,
        "plans": {"team": {"usageBilled": False, "metrics": [], "price": "$99 per year"}},
        "offers": {},
        "accountNotifications": "off",
        "offerDurationField": "newPendingOfferDuration",
        "displayName": "Auto",
        "signupUrl": "https://auto.example.com/signup",
        "loginUrl": "https://auto.example.com/login",
        "signupAudience": "auto.example.com",
    }
    assert control.put(f"{BASE}/products/auto", json=product).json() == product
    bought = control.post(f"{BASE}/purchases", json={"product": "auto", "plan": "team"}).json()
    assert bought["entitlement"]["state"] == "ENTITLEMENT_ACTIVE"
    assert bought["entitlement"]["offerDuration"] == "P1Y"
    assert events(control)[-2:] == ["ENTITLEMENT_OFFER_ACCEPTED", "ENTITLEMENT_ACTIVE"]


def test_reset_forgets_state_and_the_clock(control: httpx.Client, emu: Emulator) -> None:
    name = purchase(control)["entitlement"]["name"]
    control.post("/emulator/v1/clock:advance", json={"seconds": 3 * DAY})
    assert control.post("/emulator/v1/reset", json={}).json() == {}
    assert control.get(f"/v1/{name}").status_code == 404
    assert events(control) == []
    assert emu.clock.now() < datetime.now(UTC) + timedelta(days=1)  # the 3 days are undone
