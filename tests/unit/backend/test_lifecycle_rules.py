"""The lifecycle's rules on in-memory fakes (no database, no HTTP): a notification in, our records
and hooks out, as `service.notifications.handle_message` decides them."""

from __future__ import annotations

import json
from typing import Any

from marketplace_saas.domain.entitlements import (
    ACTIVATION_REQUESTED,
    ACTIVE,
)
from marketplace_saas.service.notifications import Disposition, handle_message
from tests.unit.backend.fakes import PROVIDER, FakeApp


def message(event_type: str, entitlement_id: str, *, event_id: str | None = None) -> bytes:
    payload: dict[str, Any] = {
        "eventId": event_id or f"{event_type}-{entitlement_id}",
        "eventType": event_type,
        "providerId": PROVIDER,
        "entitlement": {"id": entitlement_id},
    }
    return json.dumps(payload).encode()


def test_a_creation_request_under_the_auto_policy_is_approved_and_the_service_turned_on() -> None:
    app = FakeApp(approval_policy="auto")
    app.procurement.add_account("a-1", signup="APPROVED")
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVATION_REQUESTED)

    assert handle_message(app, message("ENTITLEMENT_CREATION_REQUESTED", "e-1")) is Disposition.ACK

    row = app.store.entitlements["e-1"]
    assert (row["state"], row["service_enabled"], row["service_plan"]) == (ACTIVE, True, "basic")
    assert ("approve_entitlement", "e-1") in app.procurement.requests
    assert [o["hook"] for o in app.store.outbox.values()] == ["entitlement.active"]
    assert app.store.inbox["ENTITLEMENT_CREATION_REQUESTED-e-1"].status == "processed"
