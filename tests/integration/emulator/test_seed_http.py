"""`POST /emulator/v1/providers/{p}/seed`: bulk accounts and entitlements, no notifications, and
Google's client lists and pages through them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.emulator.conftest import PROVIDER
from tests.integration.emulator.test_customer_actions import events

pytestmark = pytest.mark.integration
SEED = f"/emulator/v1/providers/{PROVIDER}/seed"


def test_seed_creates_active_entitlements_silently(
    control: httpx.Client, procurement_api: Any
) -> None:
    response = control.post(SEED, json={"count": 250, "accountPrefix": "bulk-"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["count"] == 250
    assert body["accounts"][:2] == ["bulk-0", "bulk-1"]
    assert events(control) == []
    entitlements = procurement_api.entitlements()
    first = entitlements.list(parent=f"providers/{PROVIDER}", filter="state=active").execute()
    assert len(first["entitlements"]) == 200
    rest = entitlements.list(
        parent=f"providers/{PROVIDER}", filter="state=active", pageToken=first["nextPageToken"]
    ).execute()
    assert len(rest["entitlements"]) == 50
    assert "nextPageToken" not in rest
    mine = entitlements.list(parent=f"providers/{PROVIDER}", filter="account=bulk-7").execute()
    assert [e["name"].rsplit("/", 1)[1] for e in mine["entitlements"]] == [body["entitlements"][7]]
    account = procurement_api.accounts().get(name=f"providers/{PROVIDER}/accounts/bulk-7")
    assert account.execute()["approvals"][0]["state"] == "APPROVED"


def test_seed_in_other_states_and_bad_bodies(control: httpx.Client) -> None:
    response = control.post(SEED, json={"count": 2, "state": "pending_cancellation"})
    assert response.status_code == 201, response.text
    entitlement = response.json()["entitlements"][0]
    got = control.get(f"/v1/providers/{PROVIDER}/entitlements/{entitlement}").json()
    assert got["state"] == "ENTITLEMENT_PENDING_CANCELLATION"
    for bad in ({}, {"count": -1}, {"count": 1, "state": "suspended"}, {"count": 1, "x": 1}):
        answer = control.post(SEED, json=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
