"""Operator actions through the console and the API, against the emulator over HTTP."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import AuditLog, Entitlement, InboxMessage
from marketplace_saas.bootstrap import Container
from tests.integration.backend.admin_support import (
    OPERATOR,
    PASSWORD,
    admin_container,
    console,
    csrf_from,
)
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import Feed, entitlement_row

pytestmark = pytest.mark.integration


@pytest.fixture
def manual(make_container: ContainerFactory) -> Container:
    """Operators decide everything: approvals and plan changes wait for them."""
    return admin_container(make_container, approval_policy="manual", plan_change_policy="manual")


def _pending(emulator: Emulator, container: Container, plan: str = "basic") -> tuple[str, str]:
    """A purchase whose account is approved and whose entitlement waits for the provider."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", plan)
    from marketplace_saas.service.procurement import decisions

    decisions.approve_account(container, account.id, actor="test")
    Feed(emulator, container).deliver()
    assert entitlement_row(container, entitlement.id).state == "ENTITLEMENT_ACTIVATION_REQUESTED"
    return account.id, entitlement.id


def _version(container: Container, entitlement_id: str) -> str:
    from marketplace_saas.domain.views import version_token

    with container.sessions() as session:
        row = session.get(Entitlement, entitlement_id)
        assert row is not None
        return version_token(row.state, row.updated_at)


def _google_state(emulator: Emulator, entitlement_id: str) -> str:
    return str(emulator.procurement.get_entitlement(PROVIDER, entitlement_id).state)


def test_operator_approves_a_pending_entitlement_from_the_approvals_page(
    emulator: Emulator, manual: Container
) -> None:
    """The form calls Google, shows the result, and the audit names the operator."""
    _, eid = _pending(emulator, manual)
    with console(manual, OPERATOR) as client:
        page = client.get("/admin/approvals").text
        assert f'data-entitlement="{eid}"' in page
        answer = client.post(
            f"/admin/entitlements/{eid}/approve",
            data={
                "csrf_token": csrf_from(page),
                "version": _version(manual, eid),
                "back": "/admin/approvals",
            },
            follow_redirects=False,
        )
        assert (answer.status_code, answer.headers["location"]) == (303, "/admin/approvals")
        shown = client.get("/admin/approvals").text
    assert "approved. Google now says ENTITLEMENT_ACTIVE" in shown
    assert f'data-entitlement="{eid}"' not in shown
    assert _google_state(emulator, eid) == "ENTITLEMENT_ACTIVE"
    assert entitlement_row(manual, eid).state == "ENTITLEMENT_ACTIVE"
    with manual.sessions() as session:
        actors = session.scalars(
            sa.select(AuditLog.actor).where(AuditLog.action == "approve_entitlement")
        ).all()
    assert f"operator:{OPERATOR}" in actors


def test_a_stale_form_is_refused_and_google_is_not_called(
    emulator: Emulator, manual: Container
) -> None:
    """The entitlement changed after the page was opened: nothing is applied, the page says why."""
    _, eid = _pending(emulator, manual)
    seen = _version(manual, eid)
    with manual.sessions.begin() as session:
        row = session.get(Entitlement, eid)
        assert row is not None
        row.state = "ENTITLEMENT_CANCELLED"  # what a notification would do meanwhile
    with console(manual, OPERATOR) as client:
        token = csrf_from(client.get("/admin").text)
        client.post(
            f"/admin/entitlements/{eid}/approve",
            data={"csrf_token": token, "version": seen},
            follow_redirects=False,
        )
        shown = client.get(f"/admin/entitlements/{eid}").text
        api = client.post(f"/api/v1/entitlements/{eid}/approve", json={"version": seen})
    assert "changed since you opened the page" in shown
    assert "Nothing was done" in shown
    assert api.status_code == 409
    assert _google_state(emulator, eid) == "ENTITLEMENT_ACTIVATION_REQUESTED"
    with manual.sessions() as session:
        calls = session.scalars(
            sa.select(AuditLog.action).where(AuditLog.action == "approve_entitlement")
        ).all()
    assert calls == []


def test_reject_needs_a_reason(emulator: Emulator, manual: Container) -> None:
    """No reason: 422 from the API and an error on the page; the entitlement still waits."""
    _, eid = _pending(emulator, manual)
    with console(manual) as client:
        answer = client.post(
            f"/api/v1/entitlements/{eid}/reject", json={"reason": "  "}, auth=(OPERATOR, PASSWORD)
        )
        assert answer.status_code == 422
        assert "reason is required" in answer.json()["message"]
        answer = client.post(
            f"/api/v1/entitlements/{eid}/reject",
            json={"reason": "not eligible", "version": _version(manual, eid)},
            auth=(OPERATOR, PASSWORD),
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "rejected"


def test_operator_rejects_a_plan_change_and_the_plan_stays(
    emulator: Emulator, manual: Container
) -> None:
    """PENDING_PLAN_CHANGE_APPROVAL -> reject with a reason: back to ACTIVE on the old plan."""
    _, eid = _pending(emulator, manual)
    feed = Feed(emulator, manual)
    with console(manual) as client:
        auth = (OPERATOR, PASSWORD)
        approved = client.post(f"/api/v1/entitlements/{eid}/approve", json={}, auth=auth)
        assert approved.status_code == 200, approved.text
        emulator.procurement.change_plan(PROVIDER, eid, "pro")
        feed.deliver()
        assert entitlement_row(manual, eid).state == "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"
        queue = client.get("/api/v1/approvals", auth=auth).json()
        assert [e["id"] for e in queue["plan_changes"]] == [eid]
        answer = client.post(
            f"/api/v1/entitlements/{eid}/reject-plan-change",
            json={"reason": "pro needs a contract", "version": queue["plan_changes"][0]["version"]},
            auth=auth,
        )
    assert answer.status_code == 200, answer.text
    assert _google_state(emulator, eid) == "ENTITLEMENT_ACTIVE"
    row = entitlement_row(manual, eid)
    assert (row.state, row.plan, row.new_pending_plan) == ("ENTITLEMENT_ACTIVE", "basic", None)


def test_nothing_to_decide_is_a_clear_409(emulator: Emulator, manual: Container) -> None:
    """Approving what Google no longer holds as pending says so, and changes nothing."""
    _, eid = _pending(emulator, manual)
    emulator.procurement.cancel(PROVIDER, eid, False)
    with console(manual) as client:
        answer = client.post(
            f"/api/v1/entitlements/{eid}/approve-plan-change", json={}, auth=(OPERATOR, PASSWORD)
        )
    assert answer.status_code == 409
    assert "Nothing was done" in answer.json()["message"]


def test_operator_replays_a_parked_notification(emulator: Emulator, manual: Container) -> None:
    """A parked notification replayed from its page is processed; the audit names who asked."""
    _, eid = _pending(emulator, manual)
    payload = {
        "eventId": "parked-1",
        "eventType": "ENTITLEMENT_CREATION_REQUESTED",
        "providerId": PROVIDER,
        "entitlement": {"id": eid, "updateTime": "2026-01-01T00:00:00Z"},
    }
    with manual.sessions.begin() as session:
        session.add(
            InboxMessage(
                event_id="parked-1",
                event_type="ENTITLEMENT_CREATION_REQUESTED",
                subject_kind="entitlement",
                subject_id=eid,
                payload=json.dumps(payload),
                status="parked",
                attempts=5,
                last_error="TransientProcurementError: 503",
                traceback="Traceback (most recent call last): ...",
            )
        )
    with console(manual, OPERATOR) as client:
        page = client.get("/admin/notifications/parked-1").text
        assert "TransientProcurementError: 503" in page
        assert "Traceback" in page
        answer = client.post(
            "/admin/notifications/parked-1/replay",
            data={"csrf_token": csrf_from(page)},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        shown = client.get(answer.headers["location"]).text
    assert "replayed: processed" in shown
    with manual.sessions() as session:
        row = session.scalars(
            sa.select(InboxMessage).where(InboxMessage.event_id == "parked-1")
        ).one()
        audit = session.scalars(
            sa.select(AuditLog).where(AuditLog.action == "replay_notification")
        ).one()
    assert row.status == "processed"
    assert (audit.actor, audit.outcome) == (f"operator:{OPERATOR}", "processed")


def test_report_retry_explains_what_cannot_be_retried(manual: Container) -> None:
    """Unknown report: 404. (Rejected ones: see the ledger test; accepted: nothing to resend.)"""
    with console(manual) as client:
        answer = client.post("/api/v1/usage-reports/nope/retry", json={}, auth=(OPERATOR, PASSWORD))
    assert answer.status_code == 404
