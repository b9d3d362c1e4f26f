"""The flow of Google's codelab sample (`python3/impl/step_5_entitlement_cancel`), played by our own
subscriber through the real Pub/Sub emulator and Google's discovery client: it approves an account
on its first message, records the customer only when an account message shows the `signup`
approval APPROVED, and leaves an entitlement's message unacked until that record exists.

With `accountNotifications: "approvals"` the emulator sends that second account message, so the
flow approves, records, follows a plan change and a cancellation (docs/emulator.md says how the
sample itself was run against the emulator)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from marketplace_emulator.server import Emulator, RunningEmulator, run_in_thread

pytestmark = pytest.mark.integration

PRODUCT = "codelab-product"


class SampleLikeHandler:
    """Acts on each message as the codelab's step 5 does; `customers` is its database."""

    def __init__(self, api: Any, provider: str) -> None:
        self.api = api
        self.provider = provider
        self.customers: dict[str, dict[str, Any]] = {}

    def _get(self, kind: str, resource_id: str) -> dict[str, Any] | None:
        collection = self.api.accounts() if kind == "accounts" else self.api.entitlements()
        try:
            found: dict[str, Any] = collection.get(
                name=f"providers/{self.provider}/{kind}/{resource_id}"
            ).execute()
        except HttpError as err:
            if err.resp.status == 404:
                return None
            raise
        return found

    def account(self, message: dict[str, Any]) -> bool:
        account_id = message["id"]
        account = self._get("accounts", account_id)
        if account is None:
            self.customers.pop(account_id, None)
            return True
        signup = next((a for a in account["approvals"] if a["name"] == "signup"), None)
        if signup is not None and signup["state"] == "PENDING":
            self.api.accounts().approve(
                name=account["name"], body={"approvalName": "signup"}
            ).execute()
        elif signup is not None and signup["state"] == "APPROVED":
            self.customers[account_id] = {"products": {}}
        return True  # account messages are always acked

    def entitlement(self, message: dict[str, Any], event_type: str) -> bool:
        entitlement = self._get("entitlements", message["id"])
        if entitlement is None:
            return True
        customer = self.customers.get(entitlement["account"].rsplit("/", 1)[1])
        if customer is None:
            return False  # no record yet: leave it unacked until an account message made one
        state, name = entitlement["state"], entitlement["name"]
        if event_type == "ENTITLEMENT_CREATION_REQUESTED":
            if state == "ENTITLEMENT_ACTIVATION_REQUESTED":
                self.api.entitlements().approve(name=name, body={}).execute()
        elif event_type in ("ENTITLEMENT_ACTIVE", "ENTITLEMENT_PLAN_CHANGED"):
            if state == "ENTITLEMENT_ACTIVE":
                customer["products"][entitlement["product"]] = entitlement["plan"]
        elif event_type == "ENTITLEMENT_PLAN_CHANGE_REQUESTED":
            if state == "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL":
                self.api.entitlements().approvePlanChange(
                    name=name, body={"pendingPlanName": entitlement["newPendingPlan"]}
                ).execute()
        elif event_type == "ENTITLEMENT_CANCELLED" and state == "ENTITLEMENT_CANCELLED":
            customer["products"].pop(entitlement["product"], None)
        return True


@pytest.fixture
def served(pubsub_env: str) -> Iterator[tuple[RunningEmulator, str]]:
    provider = f"DEMO-{uuid.uuid4().hex[:10]}"
    emulator = Emulator(providers=[provider])
    running = run_in_thread(emulator)
    yield running, provider
    running.stop()
    emulator.close()


@pytest.fixture
def subscription(served: tuple[RunningEmulator, str]) -> Iterator[tuple[Any, str]]:
    """The partner's subscription on the provider's topic (10 s ack deadline: redelivery)."""
    _, provider = served
    client = pubsub_v1.SubscriberClient()
    path = client.subscription_path("partner-project", f"codelab-{uuid.uuid4().hex[:8]}")
    client.create_subscription(
        name=path,
        topic=f"projects/cloudcommerceproc-prod/topics/{provider}",
        ack_deadline_seconds=10,
    )
    yield client, path
    client.delete_subscription(subscription=path)
    client.close()


def listen_until(
    subscription: tuple[Any, str],
    handler: SampleLikeHandler,
    done: Callable[[], bool],
    deliveries: Counter[str],
    timeout: float = 40.0,
) -> None:
    """Pull and handle messages as the sample does (ack only what it handled) until `done()`."""
    client, path = subscription
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"flow stuck; customers: {handler.customers}"
        response = client.pull(subscription=path, max_messages=10, timeout=5)
        handled = []
        for received in response.received_messages:
            payload = json.loads(received.message.data)
            deliveries[payload["eventId"]] += 1
            if "entitlement" in payload:
                ack = handler.entitlement(payload["entitlement"], payload["eventType"])
            else:
                ack = handler.account(payload["account"])
            if ack:
                handled.append(received.ack_id)
        if handled:
            client.acknowledge(subscription=path, ack_ids=handled)


def test_the_codelab_flow_approves_records_and_follows_changes_with_approval_messages(
    served: tuple[RunningEmulator, str], subscription: tuple[Any, str]
) -> None:
    """approvals setting: account approved on its first message, recorded on the APPROVED one;
    the entitlement message, left unacked meanwhile, comes back and is approved; then a plan
    change and a cancellation reach the record."""
    running, provider = served
    control = httpx.Client(base_url=running.url, timeout=10.0)
    base = f"/emulator/v1/providers/{provider}"
    control.put(
        f"{base}/products/{PRODUCT}",
        json={
            "serviceName": "codelab.endpoints.test.cloud.goog",
            "accountNotifications": "approvals",
            "plans": {"basic": {}, "pro": {}},
        },
    ).raise_for_status()
    service = build(
        "cloudcommerceprocurement",
        "v1",
        static_discovery=True,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": running.url},
    )
    handler = SampleLikeHandler(service.providers(), provider)
    deliveries: Counter[str] = Counter()
    bought = control.post(f"{base}/purchases", json={"product": PRODUCT, "plan": "basic"}).json()
    account_id = bought["account"]["name"].rsplit("/", 1)[1]
    eid = bought["entitlement"]["name"].rsplit("/", 1)[1]

    def plan() -> str | None:
        products: dict[str, str] = handler.customers.get(account_id, {}).get("products", {})
        return products.get(PRODUCT)

    listen_until(subscription, handler, lambda: plan() == "basic", deliveries)
    created = next(
        n["eventId"]
        for n in running.emulator.notifications(provider)
        if n["eventType"] == "ENTITLEMENT_CREATION_REQUESTED"
    )
    assert deliveries[created] >= 2  # left unacked until the customer was recorded
    control.post(f"{base}/entitlements/{eid}:changePlan", json={"plan": "pro"}).raise_for_status()
    listen_until(subscription, handler, lambda: plan() == "pro", deliveries)
    control.post(f"{base}/entitlements/{eid}:cancel", json={}).raise_for_status()
    listen_until(subscription, handler, lambda: plan() is None, deliveries)
    assert account_id in handler.customers
    control.close()
    service.close()
