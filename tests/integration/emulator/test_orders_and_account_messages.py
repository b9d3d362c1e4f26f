"""Several orders per account, and account notifications as a product setting, through Google's
discovery client over HTTP (notifications read back from the emulator's record)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.integration.emulator.conftest import PROVIDER

pytestmark = pytest.mark.integration
BASE = f"/emulator/v1/providers/{PROVIDER}"


def buy(control: httpx.Client, **body: Any) -> dict[str, Any]:
    response = control.post(f"{BASE}/purchases", json=body)
    assert response.status_code == 201, response.text
    bought: dict[str, Any] = response.json()
    return bought


def account_messages(control: httpx.Client) -> list[dict[str, Any]]:
    listed = control.get("/emulator/v1/notifications", params={"provider": PROVIDER}).json()
    return [n for n in listed["notifications"] if "account" in n]


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def test_one_account_holds_several_orders_that_activate_on_their_own(
    control: httpx.Client, procurement_api: Any
) -> None:
    """Three purchases on one account: three entitlements (orderId each), approved one at a time,
    each ACTIVE only once approved itself."""
    first = buy(control, product="example-product", plan="basic")
    account = first["account"]["name"]
    account_id = account.rsplit("/", 1)[1]
    more = [
        buy(control, product="example-product", plan=p, account=account_id)
        for p in ("pro", "basic")
    ]
    names = [b["entitlement"]["name"] for b in (first, *more)]
    listed = (
        procurement_api.entitlements()
        .list(parent=f"providers/{PROVIDER}", filter=f"account={account_id}")
        .execute()["entitlements"]
    )
    assert [e["name"] for e in listed] == names
    assert len({e["orderId"] for e in listed}) == 3
    procurement_api.accounts().approve(name=account, body={"approvalName": "signup"}).execute()
    procurement_api.entitlements().approve(name=names[1], body={}).execute()
    states = [procurement_api.entitlements().get(name=n).execute()["state"] for n in names]
    assert states == [
        "ENTITLEMENT_ACTIVATION_REQUESTED",
        "ENTITLEMENT_ACTIVE",
        "ENTITLEMENT_ACTIVATION_REQUESTED",
    ]


def test_the_signup_token_lists_the_accounts_orders_when_none_are_given(
    control: httpx.Client,
) -> None:
    """google.orders: the account's order ids (cancelled ones left out) unless the caller gives
    them; given orders are kept as given."""
    first = buy(control, product="example-product", plan="basic")
    account_id = first["account"]["name"].rsplit("/", 1)[1]
    second = buy(control, product="example-product", plan="pro", account=account_id)
    third = buy(control, product="example-product", plan="pro", account=account_id)
    gone = third["entitlement"]["orderId"]
    control.post(f"{BASE}/entitlements/{gone}:cancel", json={}).raise_for_status()
    minted = control.post(
        "/emulator/v1/signupTokens", json={"account": account_id, "audience": "app.example.com"}
    ).json()["token"]
    orders = [first["entitlement"]["orderId"], second["entitlement"]["orderId"]]
    assert claims(minted)["google"]["orders"] == orders
    given = control.post(
        "/emulator/v1/signupTokens",
        json={"account": account_id, "audience": "app.example.com", "orders": ["o-1"]},
    ).json()["token"]
    assert claims(given)["google"]["orders"] == ["o-1"]


@pytest.mark.parametrize(
    ("setting", "on_creation", "on_approval"),
    [("off", 0, 0), ("creation", 1, 0), ("approvals", 1, 1)],
)
def test_account_messages_follow_the_products_setting(
    control: httpx.Client, procurement_api: Any, setting: str, on_creation: int, on_approval: int
) -> None:
    """off: no account message; creation: one when the account is created; approvals: also one
    for each approval that changes state (approve, reject), none for a repeat or a reset."""
    product = {"serviceName": "notes.endpoints.test.cloud.goog", "plans": {"basic": {}}}
    control.put(
        f"{BASE}/products/notes", json={**product, "accountNotifications": setting}
    ).raise_for_status()
    bought = buy(control, product="notes", plan="basic")
    account = bought["account"]["name"]
    assert len(account_messages(control)) == on_creation
    accounts = procurement_api.accounts()
    accounts.approve(name=account, body={"approvalName": "signup"}).execute()
    accounts.approve(name=account, body={"approvalName": "signup"}).execute()  # no change
    assert len(account_messages(control)) == on_creation + on_approval
    accounts.reject(name=account, body={"approvalName": "signup"}).execute()
    accounts.reset(name=account, body={}).execute()
    messages = account_messages(control)
    assert len(messages) == on_creation + 2 * on_approval
    assert all(m["eventType"] == "ACCOUNT_ACTIVE" for m in messages)
    assert all(m["account"]["id"] == account.rsplit("/", 1)[1] for m in messages)


def test_a_product_defaults_to_no_account_messages_as_google_documents(
    control: httpx.Client,
) -> None:
    """A product put without the setting sends no account message ("if you've turned on account
    notifications for that product")."""
    product = {"serviceName": "plain.endpoints.test.cloud.goog", "plans": {"basic": {}}}
    stored = control.put(f"{BASE}/products/plain", json=product).json()
    assert stored["accountNotifications"] == "off"
    buy(control, product="plain", plan="basic")
    assert account_messages(control) == []
