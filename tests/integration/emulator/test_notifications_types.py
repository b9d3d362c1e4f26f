"""Every notification type the emulator emits, received through the real Pub/Sub emulator.

Customer actions and the provider's API calls go over HTTP to the emulator served on a port; the
notifications are read back with Google's subscriber from a subscription on the provider's topic.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from marketplace_emulator.clock import parse_rfc3339
from marketplace_emulator.server import Emulator, run_in_thread
from tests.integration.emulator.test_notifications_pubsub import Subscription

pytestmark = pytest.mark.integration

EVERY_EVENT_TYPE = {
    "ACCOUNT_ACTIVE",
    "ACCOUNT_DELETED",
    "ENTITLEMENT_CREATION_REQUESTED",
    "ENTITLEMENT_OFFER_ACCEPTED",
    "ENTITLEMENT_ACTIVE",
    "ENTITLEMENT_PLAN_CHANGE_REQUESTED",
    "ENTITLEMENT_PLAN_CHANGED",
    "ENTITLEMENT_PLAN_CHANGE_CANCELLED",
    "ENTITLEMENT_PENDING_CANCELLATION",
    "ENTITLEMENT_CANCELLATION_REVERTED",
    "ENTITLEMENT_CANCELLED",
    "ENTITLEMENT_RENEWED",
    "ENTITLEMENT_OFFER_ENDED",
    "ENTITLEMENT_DELETED",
}
ACCOUNT_EVENTS = {"ACCOUNT_ACTIVE", "ACCOUNT_DELETED"}


class Marketplace:
    """The emulator over HTTP: the customer's actions and the provider's API calls."""

    def __init__(self, base_url: str, provider: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.provider = provider

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def customer(self, action: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", f"/emulator/v1/providers/{self.provider}/{action}", body or {})

    def provider_api(self, action: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", f"/v1/providers/{self.provider}/{action}", body or {})

    def purchase(self, product: str, plan: str, account: str | None = None) -> tuple[str, str]:
        body = {"product": product, "plan": plan} | ({"account": account} if account else {})
        result = self.customer("purchases", body)
        return (
            result["account"]["name"].rsplit("/", 1)[1],
            result["entitlement"]["name"].rsplit("/", 1)[1],
        )


@pytest.fixture
def provider() -> str:
    return f"DEMO-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def emulator(pubsub_env: str, provider: str) -> Iterator[Emulator]:
    """The emulator with Pub/Sub delivery, its topic created at start for `provider`."""
    emulator = Emulator(providers=[provider])
    yield emulator
    emulator.close()


@pytest.fixture
def marketplace(emulator: Emulator, provider: str) -> Iterator[Marketplace]:
    running = run_in_thread(emulator)
    marketplace = Marketplace(running.url, provider)
    yield marketplace
    marketplace.http.close()
    running.stop()


@pytest.fixture
def subscription(emulator: Emulator, provider: str) -> Iterator[Subscription]:
    subscription = Subscription(provider)
    yield subscription
    subscription.close()


def drive_every_transition(market: Marketplace) -> tuple[str, str, str]:
    """Customer actions and provider calls that make the emulator emit every event type."""
    market.call(
        "PUT",
        f"/emulator/v1/providers/{market.provider}/products/auto-product",
        {"serviceName": "auto-product.example.com", "autoApprove": True, "plans": {"basic": {}}},
    )
    account, first = market.purchase("example-product", "basic")  # ACCOUNT_ACTIVE, CREATION_REQ.
    market.provider_api(f"accounts/{account}:approve", {"approvalName": "signup"})
    market.provider_api(f"entitlements/{first}:approve")  # ACTIVE
    market.customer(f"entitlements/{first}:changePlan", {"plan": "pro"})  # PLAN_CHANGE_REQUESTED
    market.provider_api(f"entitlements/{first}:approvePlanChange", {"pendingPlanName": "pro"})
    market.customer(f"entitlements/{first}:changePlan", {"plan": "basic"})
    market.customer(f"entitlements/{first}:cancelPlanChange")  # PLAN_CHANGE_CANCELLED
    market.customer(f"entitlements/{first}:renew")  # RENEWED
    market.customer(f"entitlements/{first}:cancel", {"atTermEnd": True})  # PENDING_CANCELLATION
    market.customer(f"entitlements/{first}:revertCancellation")  # CANCELLATION_REVERTED
    market.customer(f"entitlements/{first}:endOffer")  # OFFER_ENDED
    market.customer(f"entitlements/{first}:cancel", {"atTermEnd": False})  # CANCELLED
    market.customer(f"entitlements/{first}:delete")  # DELETED
    _, second = market.purchase("auto-product", "basic", account)  # OFFER_ACCEPTED
    market.customer(f"accounts/{account}:delete")  # ACCOUNT_DELETED
    return account, first, second


def test_every_notification_type_arrives_through_pubsub_in_the_reference_shape(
    emulator: Emulator, marketplace: Marketplace, subscription: Subscription, provider: str
) -> None:
    """All 14 event types reach the subscriber as §2.3 payloads, exactly as the emulator lists."""
    account, first, second = drive_every_transition(marketplace)
    listed = marketplace.call("GET", f"/emulator/v1/notifications?provider={provider}")
    listed = listed["notifications"]
    assert emulator.notifier.flush(timeout=20)

    received = subscription.payloads(len(emulator.notifications(provider)))

    assert {p["eventType"] for p in received} == EVERY_EVENT_TYPE
    assert sorted(received, key=lambda p: p["eventId"]) == sorted(
        listed, key=lambda p: p["eventId"]
    )
    assert emulator.notifier.published() == listed
    assert len({p["eventId"] for p in received}) == len(received)
    for payload in received:
        kind = "account" if payload["eventType"] in ACCOUNT_EVENTS else "entitlement"
        other = "entitlement" if kind == "account" else "account"
        assert set(payload) == {"eventId", "eventType", "providerId", kind}, payload
        assert other not in payload
        assert payload["providerId"] == provider
        assert payload["eventId"]
        assert parse_rfc3339(payload[kind]["updateTime"])
        expected_ids = {account} if kind == "account" else {first, second}
        assert payload[kind]["id"] in expected_ids

    by_type: dict[str, list[dict[str, Any]]] = {}
    for payload in received:
        by_type.setdefault(payload["eventType"], []).append(
            payload["entitlement" if "entitlement" in payload else "account"]
        )
    assert {e["newPlan"] for e in by_type["ENTITLEMENT_PLAN_CHANGE_REQUESTED"]} == {"pro", "basic"}
    assert [e["newPlan"] for e in by_type["ENTITLEMENT_PLAN_CHANGED"]] == ["pro"]
    [accepted] = by_type["ENTITLEMENT_OFFER_ACCEPTED"]
    assert accepted["id"] == second
    assert parse_rfc3339(accepted["newOfferStartTime"]) < parse_rfc3339(accepted["newOfferEndTime"])
    assert Counter(e["id"] for e in by_type["ENTITLEMENT_DELETED"]) == {first: 1, second: 1}


def test_notification_faults_set_over_http_reach_the_subscriber(
    emulator: Emulator, marketplace: Marketplace, subscription: Subscription, provider: str
) -> None:
    """PUT /emulator/v1/faults duplicateRate=1 and reorder: each event arrives twice, none lost."""
    marketplace.call(
        "PUT",
        "/emulator/v1/faults",
        {"seed": 7, "notifications": {"duplicateRate": 1, "reorder": True}},
    )
    account, entitlement = marketplace.purchase("example-product", "basic")
    marketplace.provider_api(f"accounts/{account}:approve", {"approvalName": "signup"})
    marketplace.provider_api(f"entitlements/{entitlement}:approve")
    assert emulator.notifier.flush(timeout=20)

    published = emulator.notifications(provider)
    received = subscription.payloads(2 * len(published))

    assert [p["eventType"] for p in published] == [
        "ACCOUNT_ACTIVE",
        "ENTITLEMENT_CREATION_REQUESTED",
        "ENTITLEMENT_ACTIVE",
    ]
    assert Counter(p["eventId"] for p in received) == {p["eventId"]: 2 for p in published}
