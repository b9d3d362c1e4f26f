"""The operator console in a real browser, over the whole stack.

The emulator and the backend run over real HTTP; the emulator pushes its notifications to the
backend's `/pubsub/push`. An operator signs in, approves an account and its pending entitlement
and sees it turn active after Google's notification, rejects a plan change, replays a parked
notification and opens the usage chart. Hostile customer text never runs. Screenshots of every
page go to `test-output/admin/`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db.models import Customer, Entitlement, InboxMessage, UsageRecord
from tests.e2e.stack import PASSWORD, Stack, operator_stack, wait_until

pytestmark = pytest.mark.e2e

PROVIDER = "DEMO-sandbox"
HOSTILE = "<img src=x onerror=\"window.__pwned=1;alert('x')\"><script>window.__pwned=2</script>"


@pytest.fixture
def stack(migrated_database_url: str) -> Iterator[Stack]:
    """Emulator and backend on real ports; operators decide approvals and plan changes."""
    with operator_stack(
        migrated_database_url, PROVIDER, approval_policy="manual", plan_change_policy="manual"
    ) as running:
        yield running


def _state(stack: Stack, entitlement_id: str) -> str | None:
    with stack.container.sessions() as session:
        row = session.get(Entitlement, entitlement_id)
        return row.state if row is not None else None


def _notified(stack: Stack, event_type: str, subject: str) -> bool:
    with stack.container.sessions() as session:
        count = session.scalar(
            sa.select(sa.func.count()).where(
                InboxMessage.event_type == event_type,
                InboxMessage.subject_id == subject,
                InboxMessage.status == "processed",
            )
        )
    return bool(count)


def test_an_operator_runs_the_marketplace_from_the_console(
    stack: Stack, page: Any, test_output_dir: Path, request: pytest.FixtureRequest
) -> None:
    shots = test_output_dir / "admin"
    shots.mkdir(parents=True, exist_ok=True)
    suffix = request.node.callspec.id
    alerts: list[str] = []

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "confirm":
            dialog.accept()  # our own "Approve?" confirmations
        else:
            alerts.append(dialog.message)
            dialog.dismiss()

    page.on("dialog", on_dialog)

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{name}-{suffix}.png"), full_page=True)

    def go(path: str) -> None:
        page.goto(stack.url + path)

    emulator = httpx.Client(base_url=stack.emulator.url, timeout=10)
    request.addfinalizer(emulator.close)
    bought = emulator.post(
        f"/emulator/v1/providers/{PROVIDER}/purchases",
        json={"product": "example-product", "plan": "basic"},
    )
    assert bought.status_code == 201, bought.text
    account_id = bought.json()["account"]["name"].rsplit("/", 1)[-1]
    eid = bought.json()["entitlement"]["name"].rsplit("/", 1)[-1]
    wait_until(lambda: _state(stack, eid), "the purchase's notifications to reach the backend")
    with stack.container.sessions.begin() as session:
        session.add(Customer(id="c-1", name=HOSTILE, company=HOSTILE, email="x@example.com"))
    with stack.container.sessions.begin() as session:
        session.execute(
            sa.text("UPDATE accounts SET customer_id = 'c-1' WHERE id = :id"), {"id": account_id}
        )

    # Sign in: any console page sends a stranger to the sign-in form first.
    go("/admin/approvals")
    assert page.get_by_role("heading", level=1).inner_text() == "Operator console"
    shot("01-sign-in")
    page.get_by_label("Name").fill("olga")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_text("do not match an operator").is_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(stack.url + "/admin/approvals")
    shot("02-approvals")

    # Approve the account, then its pending entitlement; Google's notification turns it active.
    page.locator(f'tr[data-account="{account_id}"]').get_by_role("button", name="Approve").click()
    page.wait_for_url(stack.url + "/admin/approvals")
    assert "Account " + account_id in page.locator("[data-flash]").inner_text()
    row = page.locator(f'tr[data-entitlement="{eid}"]')
    row.get_by_role("button", name="Approve").click()
    page.wait_for_url(stack.url + "/admin/approvals")
    assert "Google now says ENTITLEMENT_ACTIVE" in page.locator("[data-flash]").inner_text()
    shot("03-approved")
    wait_until(lambda: _notified(stack, "ENTITLEMENT_ACTIVE", eid), "ENTITLEMENT_ACTIVE")
    go(f"/admin/entitlements/{eid}")
    assert "ACTIVE" in page.locator("h1").inner_text()
    assert page.get_by_text("ENTITLEMENT_ACTIVE", exact=True).count() >= 1

    # The customer asks for another plan; the operator rejects the change with a reason.
    changed = emulator.post(
        f"/emulator/v1/providers/{PROVIDER}/entitlements/{eid}:changePlan", json={"plan": "pro"}
    )
    assert changed.status_code == 200, changed.text
    wait_until(
        lambda: _state(stack, eid) == "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL", "plan change"
    )
    go("/admin/approvals")
    change = page.locator(f'#pending-plan-changes tr[data-entitlement="{eid}"]')
    assert "basic → pro" in change.inner_text()
    change.get_by_role("button", name="Reject").click()  # no reason: the browser refuses
    assert page.url == stack.url + "/admin/approvals"
    change.get_by_placeholder("Reason (required)").last.fill("pro needs a signed contract")
    change.get_by_role("button", name="Reject").click()
    page.wait_for_url(stack.url + "/admin/approvals")
    assert "plan change rejected" in page.locator("[data-flash]").inner_text()
    shot("04-plan-change-rejected")
    wait_until(lambda: _state(stack, eid) == "ENTITLEMENT_ACTIVE", "back to ACTIVE")
    go(f"/admin/entitlements/{eid}")
    assert "reject_plan_change" in page.locator("table").last.inner_text()

    # A parked notification: its error and traceback are shown, and a replay processes it.
    payload = {
        "eventId": "parked-e2e",
        "eventType": "ENTITLEMENT_ACTIVE",
        "providerId": PROVIDER,
        "entitlement": {"id": eid, "updateTime": "2026-01-01T00:00:00Z"},
    }
    with stack.container.sessions.begin() as session:
        session.add(
            InboxMessage(
                event_id="parked-e2e",
                event_type="ENTITLEMENT_ACTIVE",
                subject_kind="entitlement",
                subject_id=eid,
                payload=json.dumps(payload),
                status="parked",
                attempts=5,
                last_error="TransientProcurementError: 503 backend unavailable",
                traceback="Traceback (most recent call last):\n  ...",
            )
        )
    go("/admin/notifications?status=parked")
    shot("05-notifications-parked")
    page.get_by_role("link", name="parked-e2e").click()
    assert page.get_by_text("503 backend unavailable").is_visible()
    shot("06-notification-parked")
    page.get_by_role("button", name="Replay").click()
    page.wait_for_url(stack.url + "/admin/notifications/parked-e2e")
    assert "replayed: processed" in page.locator("[data-flash]").inner_text()
    shot("07-notification-replayed")

    # Usage: records in two hours give the chart two bars.
    with stack.container.sessions() as session:
        row_ = session.get(Entitlement, eid)
        assert row_ is not None
        assert row_.active_since is not None
    hour = stack.container.now().replace(minute=0, second=0, microsecond=0)
    with stack.container.sessions.begin() as session:
        for i, ago in enumerate((1, 2)):
            start = hour - timedelta(hours=ago)
            session.add(
                UsageRecord(
                    record_id=f"u{i}",
                    entitlement_id=eid,
                    metric="requests",
                    value=Decimal(10 * (i + 1)),
                    time=start,
                    window_start=start,
                )
            )
    go(f"/admin/entitlements/{eid}")
    chart = page.locator('figure.chart[data-metric="requests"]')
    chart.scroll_into_view_if_needed()
    assert chart.locator("rect.bar--ingested").count() == 2
    assert "ingested 30" in chart.inner_text()
    shot("08-entitlement-usage-chart")

    # Every other page, for the record; hostile customer text shows as text and runs nothing.
    for name, path in [
        ("09-overview", "/admin"),
        ("10-customers", "/admin/accounts"),
        ("11-account", f"/admin/accounts/{account_id}"),
        ("12-entitlements", "/admin/entitlements"),
        ("13-reports", "/admin/reports"),
        ("14-api", "/admin/api"),
        ("15-not-found", "/admin/entitlements/no-such-entitlement"),
    ]:
        go(path)
        if name == "09-overview":
            page.locator("table.health").wait_for()
        shot(name)
    go(f"/admin/accounts/{account_id}")
    assert HOSTILE in page.locator("dl.facts").first.inner_text()
    assert page.evaluate("window.__pwned") is None
    assert alerts == []
    assert page.locator("h1").count() == 1

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(stack.url + "/admin/login")
    go("/admin")
    assert page.url.startswith(stack.url + "/admin/login")
