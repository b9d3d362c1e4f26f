"""Console pages and the JSON API over seeded records: counts, lists, escaping, 404s, the chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import (
    Account,
    Customer,
    Entitlement,
    InboxMessage,
    UsageRecord,
    UsageReport,
)
from marketplace_saas.bootstrap import Container
from tests.integration.backend.admin_support import (
    OPERATOR,
    PASSWORD,
    VIEWER,
    admin_container,
    console,
)
from tests.integration.backend.conftest import ContainerFactory

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def seeded(make_container: ContainerFactory) -> Container:
    container = admin_container(make_container)
    container._clock = lambda: NOW  # a fixed clock: counts "in the last hour" are exact
    return container


def _customer(session: Session, account_id: str, *, name: str, company: str) -> None:
    session.add(Customer(id=f"c-{account_id}", name=name, company=company, email=f"{account_id}@x"))
    session.flush()
    session.add(
        Account(
            id=account_id,
            provider_id="DEMO-sandbox",
            customer_id=f"c-{account_id}",
            signup_approval="PENDING",
        )
    )


def _entitlement(session: Session, eid: str, state: str, *, account: str = "acc-1") -> None:
    session.add(
        Entitlement(
            id=eid,
            provider_id="DEMO-sandbox",
            account_id=account,
            product="example-product",
            plan="basic",
            state=state,
        )
    )


def test_overview_counts_states_waiting_and_failed_notifications(seeded: Container) -> None:
    """Entitlements by state, approvals waiting, and last hour's notifications with failures."""
    with seeded.sessions.begin() as session:
        _customer(session, "acc-1", name="Ada", company="Analytical")
        for i in range(3):
            _entitlement(session, f"e-active-{i}", "ENTITLEMENT_ACTIVE")
        _entitlement(session, "e-wait", "ENTITLEMENT_ACTIVATION_REQUESTED")
        for i, status in enumerate(["processed", "parked", "invalid"]):
            session.add(
                InboxMessage(
                    event_id=f"ev-{i}",
                    payload="{}",
                    status=status,
                    received_at=NOW - timedelta(minutes=5),
                )
            )
        session.add(
            InboxMessage(
                event_id="old", payload="{}", status="parked", received_at=NOW - timedelta(hours=3)
            )
        )
    with console(seeded, VIEWER) as client:
        data = client.get("/api/v1/overview").json()
        page = client.get("/admin").text
    assert data["entitlements_by_state"] == {
        "ENTITLEMENT_ACTIVATION_REQUESTED": 1,
        "ENTITLEMENT_ACTIVE": 3,
    }
    assert data["waiting"] == {"accounts": 1, "entitlements": 1, "plan_changes": 0}
    assert data["notifications_last_hour"]["total"] == 3
    assert data["notifications_last_hour"]["failed"] == 2
    assert data["parked_total"] == 2
    assert "2 failed" in page
    assert "waiting for approval" in page


def test_hostile_customer_text_is_escaped_on_every_page(seeded: Container) -> None:
    """`<script>` in names, company, plan and errors is shown as text, never as markup."""
    with seeded.sessions.begin() as session:
        _customer(session, "acc-1", name=HOSTILE, company=HOSTILE)
        _entitlement(session, "e-1", "ENTITLEMENT_ACTIVATION_REQUESTED")
        session.add(
            InboxMessage(
                event_id="ev-x",
                payload=HOSTILE,
                status="invalid",
                last_error=HOSTILE,
                traceback=HOSTILE,
                subject_kind="entitlement",
                subject_id="e-1",
            )
        )
    pages = [
        "/admin/accounts",
        "/admin/accounts?q=script",
        "/admin/accounts/acc-1",
        "/admin/entitlements",
        "/admin/entitlements/e-1",
        "/admin/approvals",
        "/admin/notifications",
        "/admin/notifications/ev-x",
    ]
    with console(seeded, VIEWER) as client:
        for path in pages:
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert "<script>alert" not in answer.text, path
            assert "<img src=x" not in answer.text, path
            assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert "&lt;script&gt;alert(" in client.get("/admin/accounts/acc-1").text
        assert "&lt;script&gt;" in client.get("/admin/notifications/ev-x").text


@pytest.mark.parametrize(
    "path", ["/admin/accounts/nope", "/admin/entitlements/nope", "/admin/notifications/nope"]
)
def test_unknown_ids_are_a_404_page_and_a_404_json(seeded: Container, path: str) -> None:
    """A page for people, JSON for the API; both 404."""
    with console(seeded, VIEWER) as client:
        answer = client.get(path)
        assert answer.status_code == 404
        assert "<h1>Not found</h1>" in answer.text
        api = client.get(path.replace("/admin/", "/api/v1/"))
        assert api.status_code == 404
        assert api.json()["error"]["code"] == 404


def test_entitlement_list_pages_by_keyset_without_overlap(seeded: Container) -> None:
    """120 entitlements: pages of 50, 50 and 20, in id order, each id once; filters apply."""
    with seeded.sessions.begin() as session:
        for i in range(120):
            state = "ENTITLEMENT_ACTIVE" if i % 2 else "ENTITLEMENT_CANCELLED"
            _entitlement(session, f"e-{i:04d}", state)
    seen: list[str] = []
    after = None
    with console(seeded, VIEWER) as client:
        for expected in (50, 50, 20):
            params: dict[str, str] = {"after": after} if after else {}
            page = client.get("/api/v1/entitlements", params=params).json()
            assert len(page["items"]) == expected
            seen += [item["id"] for item in page["items"]]
            after = page["next_after"]
        assert after is None
        html = client.get("/admin/entitlements").text
        assert "after=e-0049" in html
        active = client.get("/api/v1/entitlements", params={"state": "ENTITLEMENT_ACTIVE"}).json()
    assert seen == sorted(seen)
    assert len(set(seen)) == 120
    assert {item["state"] for item in active["items"]} == {"ENTITLEMENT_ACTIVE"}


def test_customer_search_matches_company_and_escapes_wildcards(seeded: Container) -> None:
    """Search finds by company (any case); `%` is a literal character, not a wildcard."""
    with seeded.sessions.begin() as session:
        _customer(session, "acc-1", name="Ada", company="Analytical Engines")
        _customer(session, "acc-2", name="Bob", company="Babbage & Co")
    with console(seeded, VIEWER) as client:
        found = client.get("/api/v1/accounts", params={"q": "analytical"}).json()["items"]
        none = client.get("/api/v1/accounts", params={"q": "%"}).json()["items"]
        html = client.get("/admin/accounts", params={"q": "babbage"}).text
    assert [a["id"] for a in found] == ["acc-1"]
    assert none == []
    assert "acc-2" in html
    assert "acc-1" not in html


def test_usage_chart_draws_ingested_and_reported_hours_as_svg(seeded: Container) -> None:
    """Per metric, one bar per hour for ingested records and one for the accepted report."""
    hour = NOW.replace(minute=0) - timedelta(hours=2)
    with seeded.sessions.begin() as session:
        _entitlement(session, "e-1", "ENTITLEMENT_ACTIVE")
        for i, value in enumerate((Decimal(3), Decimal(4))):
            session.add(
                UsageRecord(
                    record_id=f"r{i}",
                    entitlement_id="e-1",
                    metric="requests",
                    value=value,
                    time=hour,
                    window_start=hour,
                )
            )
        session.add(
            UsageReport(
                operation_id="op-1",
                entitlement_id="e-1",
                consumer_id="project:x",
                plan="basic",
                window_start=hour,
                window_end=hour + timedelta(hours=1),
                metric_values={
                    "svc/basic_requests": {"metric": "requests", "type": "int64", "value": "7"}
                },
                status="accepted",
            )
        )
    with console(seeded, VIEWER) as client:
        html = client.get("/admin/entitlements/e-1").text
        usage = client.get("/api/v1/entitlements/e-1/usage").json()
    assert '<figure class="chart" data-metric="requests">' in html
    assert html.count('class="bar bar--ingested"') == 1
    assert html.count('class="bar bar--reported"') == 1
    assert f"{hour:%Y-%m-%d %H:00} UTC: ingested 7" in html
    assert Decimal(usage["metrics"]["requests"][0]["ingested"]) == 7
    assert usage["metrics"]["requests"][0]["reported"] == "7"


def test_report_ledger_filters_by_status_and_shows_googles_error(seeded: Container) -> None:
    """Rejected reports list Google's error; a rejected report is not retried (409, why)."""
    with seeded.sessions.begin() as session:
        for i, status in enumerate(["accepted", "rejected"]):
            session.add(
                UsageReport(
                    operation_id=f"op-{i}",
                    entitlement_id="e-1",
                    consumer_id="project:x",
                    plan="basic",
                    window_start=NOW - timedelta(hours=3 - i),
                    window_end=NOW - timedelta(hours=2 - i),
                    status=status,
                    error="report: 3: <b>metric unknown</b>" if status == "rejected" else None,
                )
            )
    with console(seeded, VIEWER) as client:
        rejected = client.get("/api/v1/usage-reports", params={"status": "rejected"}).json()
        html = client.get("/admin/reports?status=rejected").text
    with console(seeded) as script:
        retry = script.post("/api/v1/usage-reports/op-1/retry", json={}, auth=(OPERATOR, PASSWORD))
    assert [r["operation_id"] for r in rejected["items"]] == ["op-1"]
    assert "report: 3: &lt;b&gt;metric unknown&lt;/b&gt;" in html
    assert "op-0" not in html
    assert retry.status_code == 409
    assert "Google rejected it" in retry.json()["message"]
