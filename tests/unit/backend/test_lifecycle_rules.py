"""The lifecycle's rules on in-memory fakes (no database, no HTTP): a notification in, our records,
hooks and inbox status out, as `service.procurement.inbox.handle_message` decides them."""

from __future__ import annotations

import json
from typing import Any

from marketplace_saas.adapters.procurement_errors import TransientProcurementError
from marketplace_saas.domain.entitlements import (
    ACTIVATION_REQUESTED,
    ACTIVE,
    CANCELLED,
    PENDING_PLAN_CHANGE_APPROVAL,
)
from marketplace_saas.service.procurement import reconcile
from marketplace_saas.service.procurement.inbox import Disposition, handle_message
from tests.unit.backend.fakes import PROVIDER, FakeApp


def message(
    event_type: str, subject_id: str, *, kind: str = "entitlement", event_id: str | None = None,
    update_time: str | None = None,
) -> bytes:  # fmt: skip
    body: dict[str, Any] = {"id": subject_id}
    if update_time is not None:
        body["updateTime"] = update_time
    payload = {
        "eventId": event_id or f"{event_type}-{subject_id}",
        "eventType": event_type,
        "providerId": PROVIDER,
        kind: body,
    }
    return json.dumps(payload).encode()


def hooks(app: FakeApp) -> list[str]:
    return [row["hook"] for row in app.store.outbox.values()]


def waiting_entitlement(app: FakeApp, *, signup: str = "APPROVED") -> None:
    app.procurement.add_account("a-1", signup=signup)
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVATION_REQUESTED)


def test_a_creation_request_under_the_auto_policy_is_approved_and_the_service_turned_on() -> None:
    app = FakeApp(approval_policy="auto")
    waiting_entitlement(app)

    assert handle_message(app, message("ENTITLEMENT_CREATION_REQUESTED", "e-1")) is Disposition.ACK

    row = app.store.entitlements["e-1"]
    assert (row["state"], row["service_enabled"], row["service_plan"]) == (ACTIVE, True, "basic")
    assert ("approve_entitlement", "e-1") in app.procurement.requests
    assert hooks(app) == ["entitlement.active"]
    assert app.store.inbox["ENTITLEMENT_CREATION_REQUESTED-e-1"].status == "processed"


def test_under_the_signup_policy_an_entitlement_waits_until_its_customer_signed_up() -> None:
    app = FakeApp(approval_policy="signup")
    waiting_entitlement(app, signup="PENDING")

    handle_message(app, message("ENTITLEMENT_CREATION_REQUESTED", "e-1"))

    assert [m for m, _ in app.procurement.requests if m.startswith("approve")] == []
    row = app.store.entitlements["e-1"]
    assert (row["state"], row["service_enabled"]) == (ACTIVATION_REQUESTED, False)
    assert app.store.accounts["a-1"].signup_approval == "PENDING"  # the unseen account recorded
    assert hooks(app) == []


def test_a_plan_change_is_approved_under_auto_and_moves_the_service_to_the_new_plan() -> None:
    app = FakeApp(plan_change_policy="auto")
    app.procurement.add_account("a-1", signup="APPROVED")
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVE)
    handle_message(app, message("ENTITLEMENT_ACTIVE", "e-1"))
    app.tick()
    app.procurement.set_entitlement("e-1", state=PENDING_PLAN_CHANGE_APPROVAL, newPendingPlan="pro")

    handle_message(app, message("ENTITLEMENT_PLAN_CHANGE_REQUESTED", "e-1"))

    assert ("approve_plan_change", "e-1") in app.procurement.requests
    row = app.store.entitlements["e-1"]
    assert (row["plan"], row["service_plan"]) == ("pro", "pro")
    assert [(h["plan"], h["previous_plan"]) for h in app.store.plan_history] == [
        ("basic", None),
        ("pro", "basic"),
    ]
    assert hooks(app) == ["entitlement.active", "entitlement.plan_changed"]


def test_a_plan_change_waits_for_an_operator_under_the_manual_policy() -> None:
    app = FakeApp(plan_change_policy="manual")
    app.procurement.add_account("a-1", signup="APPROVED")
    app.procurement.add_entitlement(
        "e-1", account="a-1", state=PENDING_PLAN_CHANGE_APPROVAL, newPendingPlan="pro"
    )

    handle_message(app, message("ENTITLEMENT_PLAN_CHANGE_REQUESTED", "e-1"))

    assert ("approve_plan_change", "e-1") not in app.procurement.requests
    assert app.store.entitlements["e-1"]["new_pending_plan"] == "pro"


def test_a_notification_older_than_what_we_applied_changes_nothing_and_calls_nobody() -> None:
    app = FakeApp()
    app.procurement.add_account("a-1", signup="APPROVED")
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVE)
    handle_message(app, message("ENTITLEMENT_ACTIVE", "e-1"))
    requests = len(app.procurement.requests)

    old = message("ENTITLEMENT_CANCELLED", "e-1", update_time="2020-01-01T00:00:00Z")
    assert handle_message(app, old) is Disposition.ACK

    assert len(app.procurement.requests) == requests
    assert app.store.entitlements["e-1"]["service_enabled"] is True


def test_a_repeated_delivery_of_a_processed_message_is_acknowledged_without_processing() -> None:
    app = FakeApp()
    app.procurement.add_account("a-1", signup="APPROVED")
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVE)
    handle_message(app, message("ENTITLEMENT_ACTIVE", "e-1"))
    requests = len(app.procurement.requests)

    assert handle_message(app, message("ENTITLEMENT_ACTIVE", "e-1")) is Disposition.ACK

    assert len(app.procurement.requests) == requests
    assert app.store.inbox["ENTITLEMENT_ACTIVE-e-1"].deliveries == 2


def test_cancellation_turns_the_service_off_and_queues_the_cancelled_hook() -> None:
    app = FakeApp()
    app.procurement.add_account("a-1", signup="APPROVED")
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVE)
    handle_message(app, message("ENTITLEMENT_ACTIVE", "e-1"))
    app.tick()
    app.procurement.set_entitlement("e-1", state=CANCELLED)

    handle_message(app, message("ENTITLEMENT_CANCELLED", "e-1"))

    row = app.store.entitlements["e-1"]
    assert (row["service_enabled"], row["cancelled_at"]) == (False, app.now())
    assert hooks(app) == ["entitlement.active", "entitlement.cancelled"]


def test_an_entitlement_the_api_no_longer_has_is_marked_deleted_and_kept() -> None:
    app = FakeApp()
    app.procurement.add_account("a-1", signup="APPROVED")
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVE)
    handle_message(app, message("ENTITLEMENT_ACTIVE", "e-1"))
    app.tick()
    del app.procurement.entitlements["e-1"]

    handle_message(app, message("ENTITLEMENT_DELETED", "e-1"))

    row = app.store.entitlements["e-1"]
    assert (row["deleted_at"], row["service_enabled"]) == (app.now(), False)


def test_a_google_outage_nacks_until_the_attempts_are_used_then_parks_the_message() -> None:
    app = FakeApp(max_delivery_attempts=2)
    app.procurement.refuse["get_entitlement"] = TransientProcurementError("unavailable")
    data = message("ENTITLEMENT_ACTIVE", "e-1")

    assert handle_message(app, data) is Disposition.NACK
    assert app.store.inbox["ENTITLEMENT_ACTIVE-e-1"].status == "retrying"
    assert handle_message(app, data) is Disposition.ACK

    row = app.store.inbox["ENTITLEMENT_ACTIVE-e-1"]
    assert (row.status, row.attempts) == ("parked", 2)
    assert app.store.calls() == ["get_entitlement", "get_entitlement"]  # audited, both times


def test_the_deletion_of_an_account_erases_its_customers_personal_data() -> None:
    app = FakeApp()
    app.procurement.add_account("a-1", signup="APPROVED")
    handle_message(app, message("ACCOUNT_ACTIVE", "a-1", kind="account"))
    with app.unit_of_work() as uow:
        customer = uow.customers.add("c-1", user_identity="u-1")
        customer.name, customer.email = "Ada", "ada@example.com"
        uow.accounts.get("a-1").customer_id = "c-1"
    del app.procurement.accounts["a-1"]

    handle_message(app, message("ACCOUNT_DELETED", "a-1", kind="account"))

    customer = app.store.customers["c-1"]
    assert (customer.name, customer.email, customer.erased_at) == (None, None, app.now())
    assert hooks(app) == ["account.deleted"]


def test_the_reconciliation_takes_the_decision_a_lost_notification_would_have_taken() -> None:
    app = FakeApp(approval_policy="auto")
    waiting_entitlement(app)

    result = reconcile.sync_all(app)

    assert result.ok, result.errors
    assert result.decisions == ["e-1:approve_entitlement"]
    assert app.store.entitlements["e-1"]["service_enabled"] is True


def test_every_entitlement_write_takes_the_entitlement_lock() -> None:
    """The per-entitlement lock is taken through the unit of work (where replicas will rely
    on it), once per write of the entitlement's row."""
    app = FakeApp()
    app.procurement.add_account("a-1", signup="APPROVED")
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVE)

    handle_message(app, message("ENTITLEMENT_ACTIVE", "e-1"))

    locks = [lock for uow in app.units for lock in uow.locks]
    assert locks.count("entitlement:e-1") == 1


def test_a_sync_that_would_delete_most_entitlements_stops_until_an_operator_confirms() -> None:
    """The mass-deletion guard on the unit of work: 4 of 5 entitlements gone from the API (over
    10% and over 3) stop the sync with nothing written but the open block; `confirm_deletions`
    deletes them and resolves the block."""
    app = FakeApp()
    app.procurement.add_account("a-1", signup="APPROVED")
    for n in range(5):
        app.procurement.add_entitlement(f"e-{n}", account="a-1", state=ACTIVE)
    assert reconcile.sync_all(app).ok
    for n in range(1, 5):
        del app.procurement.entitlements[f"e-{n}"]

    blocked = reconcile.sync_all(app)

    assert "4 of 5 entitlements" in blocked.blocked
    assert all(row["deleted_at"] is None for row in app.store.entitlements.values())
    [block] = app.store.sync_blocks
    assert (block.entitlements_live, block.entitlements_deleting, block.resolved_at) == (5, 4, None)

    confirmed = reconcile.sync_all(app, actor="operator:ada", confirm_deletions=True)

    assert (confirmed.ok, confirmed.entitlements_deleted) == (True, 4)
    [block] = app.store.sync_blocks
    assert (block.resolution, block.resolved_by) == ("confirmed", "operator:ada")
