""" "Retry now" on a usage report left `pending`: an operator sends it, once; a viewer cannot."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import UsageReport
from marketplace_saas.adapters.servicecontrol import ServiceControlGateway
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.service.metering.report import report_usage
from tests.integration.backend.admin_support import (
    OPERATOR,
    VIEWER,
    console,
    csrf_from,
    operators_setting,
)
from tests.integration.backend.conftest import backend_settings
from tests.support.metering import emulator_entitlement, seed_entitlements

pytestmark = pytest.mark.integration

SERVICE = "example-product.endpoints.sandbox.cloud.goog"


@pytest.fixture
def reporting(
    migrated_database_url: str, emulator: Emulator, emulator_url: str
) -> Iterator[Container]:
    """A console container that reports usage to the emulator, on the emulator's clock."""
    settings = backend_settings(
        migrated_database_url,
        emulator_url,
        admin_operators=operators_setting(),
        service_control_api_endpoint=emulator_url,
        usage_grace_seconds=60,
    )
    gateway = ServiceControlGateway(settings, backoff_base=0.01, backoff_max=0.02)
    container = bootstrap(settings, servicecontrol=gateway, clock=emulator.clock.now)
    yield container
    container.close()
    gateway.close()


def _rows(container: Container) -> list[UsageReport]:
    with container.sessions() as session:
        return list(session.scalars(sa.select(UsageReport).order_by(UsageReport.window_start)))


def test_operator_retries_a_pending_report_and_google_holds_it_once(
    emulator: Emulator, reporting: Container
) -> None:
    ent = emulator_entitlement(emulator, "basic")
    with reporting.sessions.begin() as session:
        seed_entitlements(session, [ent])
    emulator.advance_clock(2 * 3600)
    emulator.faults.configure(FaultSettings(servicecontrol={"errorRate": 1.0, "statuses": [503]}))
    left = report_usage(reporting)
    assert (left.accepted, left.retrying > 0) == (0, True)
    rows = _rows(reporting)
    assert len(rows) >= 2
    assert {r.status for r in rows} == {"pending"}
    assert "503" in (rows[0].error or "")
    assert emulator.servicecontrol.accepted_reports(SERVICE) == []
    emulator.faults.clear()
    first = rows[0].operation_id
    path = f"/admin/reports/{quote(first, safe='')}/retry"

    with console(reporting, VIEWER) as client:
        token = csrf_from(client.get("/admin").text)
        refused = client.post(path, data={"csrf_token": token}, follow_redirects=False)
    assert refused.status_code == 403
    assert {r.status for r in _rows(reporting)} == {"pending"}
    assert emulator.servicecontrol.accepted_reports(SERVICE) == []

    with console(reporting, OPERATOR) as client:
        page = client.get("/admin/reports?status=pending").text
        assert "Retry now" in page
        answer = client.post(
            path,
            data={"csrf_token": csrf_from(page), "back": "/admin/reports"},
            follow_redirects=False,
        )
        assert (answer.status_code, answer.headers["location"]) == (303, "/admin/reports")
        shown = client.get(answer.headers["location"]).text
    assert f"Report {first}: accepted" in shown
    after = _rows(reporting)
    assert {r.status for r in after} == {"accepted"}
    sent = [a.to_json()["operationId"] for a in emulator.servicecontrol.accepted_reports(SERVICE)]
    assert sent.count(first) == 1
    assert sorted(sent) == sorted(r.operation_id for r in after)  # each window once
