"""The usage reporter against the emulator's Service Control: windows, ledger, check errors."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import AuditLog, Entitlement, HookOutbox, UsageReport
from marketplace_saas.adapters.servicecontrol import (
    ServiceControlGateway,
    TransientServiceControlError,
)
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.config import Settings
from marketplace_saas.domain.usage import floor_hour, operation_id
from marketplace_saas.service.metering.ingest import record_usage
from marketplace_saas.service.metering.report import report_usage
from tests.support.metering import (
    SeededEntitlement,
    emulator_entitlement,
    seed_entitlements,
    to_half_past,
)

SERVICE = "example-product.endpoints.sandbox.cloud.goog"
H = timedelta(hours=1)


@pytest.fixture(autouse=True)
def _half_past(emulator: Emulator) -> None:
    """Every test here starts at half past an hour (`to_half_past`): its windows' count does not
    depend on the minute the suite reaches it."""
    to_half_past(emulator)


@pytest.fixture
def make(
    migrated_database_url: str, emulator: Emulator, emulator_url: str
) -> Iterator[Callable[..., Container]]:
    made: list[Container] = []
    gateways: list[ServiceControlGateway] = []

    def build(gateway: Any = None, **env: Any) -> Container:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            MARKETPLACE_SANDBOX=True,
            MARKETPLACE_PROVIDER_ID="DEMO-sandbox",
            DATABASE_URL=migrated_database_url,
            PROCUREMENT_API_ENDPOINT=emulator_url,
            SERVICE_CONTROL_API_ENDPOINT=emulator_url,
            USAGE_GRACE_SECONDS=60,
            **env,
        )
        if gateway is None:
            gateway = ServiceControlGateway(settings, backoff_base=0.01, backoff_max=0.02)
            gateways.append(gateway)
        container = bootstrap(settings, servicecontrol=gateway, clock=emulator.clock.now)
        made.append(container)
        return container

    yield build
    for container in made:
        container.close()
    for gateway in gateways:
        gateway.close()


def accepted(emulator: Emulator) -> list[dict[str, Any]]:
    return [a.to_json() for a in emulator.servicecontrol.accepted_reports(SERVICE)]


def seed(container: Container, *entitlements: SeededEntitlement) -> None:
    with container.sessions.begin() as session:
        seed_entitlements(session, entitlements)


def statuses(container: Container) -> list[str]:
    with container.sessions() as session:
        query = sa.select(UsageReport.status).order_by(UsageReport.window_start)
        return list(session.scalars(query))


def test_labels_the_backend_accepts_are_accepted_by_service_control(
    make: Callable[..., Container], emulator: Emulator
) -> None:
    """Labels given with the reserved keys as spelled and international letters pass
    `POST /v1/usage`'s rule and the emulator's Service Control alike: reported, not refused."""
    container = make()
    ent = emulator_entitlement(emulator, "basic")
    seed(container, ent)
    emulator.advance_clock(3 * 3600)
    labels = {
        "cloudmarketplace.googleapis.com/resource_name": "orders-db",
        "cloudmarketplace.googleapis.com/container_name": "storefront",
        "région": "île-de-france",
    }
    moment = (ent.active_since + timedelta(minutes=1)).isoformat()
    record = {"id": "r", "entitlement": ent.id, "metric": "requests", "value": 1}
    result = record_usage(container, [{**record, "labels": labels, "time": moment}])
    assert result.accepted == 1
    summary = report_usage(container)
    assert not summary.failed, summary.errors
    assert accepted(emulator)[0]["userLabels"] == labels


def test_usage_is_reported_per_window_with_deterministic_ids_and_contiguous_times(
    make: Callable[..., Container], emulator: Emulator
) -> None:
    container = make()
    ent = emulator_entitlement(emulator, "basic")
    seed(container, ent)
    start = ent.active_since
    emulator.advance_clock(3 * 3600)
    times = [start + timedelta(minutes=1), start + H + timedelta(minutes=1)]
    labels = {"resource_name": "db-1", "container_name": "prod", "env": "x"}
    result = record_usage(
        container,
        [
            {
                "id": "a",
                "entitlement": ent.id,
                "metric": "requests",
                "value": 5,
                "labels": labels,
                "time": times[0].isoformat(),
            },
            {
                "id": "b",
                "entitlement": ent.id,
                "metric": "storage_gb",
                "value": 2,
                "labels": labels,
                "time": times[0].isoformat(),
            },
            {
                "id": "c",
                "entitlement": ent.id,
                "metric": "requests",
                "value": 7,
                "time": times[1].isoformat(),
            },
        ],
    )
    assert result.accepted == 3
    summary = report_usage(container)
    assert not summary.failed, summary.errors
    reports = accepted(emulator)
    assert len(reports) == summary.accepted >= 3
    first = reports[0]
    assert first["operationId"] == operation_id(ent.id, start, "basic")
    assert first["consumerId"] == ent.usage_reporting_id
    assert first["userLabels"] == {
        "cloudmarketplace.googleapis.com/resource_name": "db-1",
        "cloudmarketplace.googleapis.com/container_name": "prod",
        "env": "x",
    }
    values = {m["metricName"]: m["metricValues"][0] for m in first["metricValueSets"]}
    assert values == {
        f"{SERVICE}/basic_requests": {"int64Value": "5"},
        f"{SERVICE}/basic_storage_gb": {"int64Value": "2"},
    }
    second = {m["metricName"]: m["metricValues"][0] for m in reports[1]["metricValueSets"]}
    assert second[f"{SERVICE}/basic_requests"] == {"int64Value": "7"}
    assert second[f"{SERVICE}/basic_storage_gb"] == {"int64Value": "0"}  # zero hours reported
    for before, after in itertools.pairwise(reports):
        assert after["startTime"] == before["endTime"]
    assert reports[1]["startTime"] == floor_hour(start + H).isoformat().replace("+00:00", "Z")
    assert set(statuses(container)) == {"accepted"}
    again = report_usage(container)
    assert (again.closed, again.accepted, len(accepted(emulator))) == (0, 0, len(reports))


def test_zero_hours_are_skipped_when_configured_and_nothing_is_sent(
    make: Callable[..., Container], emulator: Emulator
) -> None:
    container = make(USAGE_REPORT_ZERO=False)
    ent = emulator_entitlement(emulator, "pro")
    seed(container, ent)
    emulator.advance_clock(3 * 3600)
    summary = report_usage(container)
    assert summary.closed == summary.skipped >= 3
    assert accepted(emulator) == []
    assert set(statuses(container)) == {"skipped"}


def test_a_billing_disabled_check_turns_service_off_and_a_later_pass_restores_it(
    make: Callable[..., Container], emulator: Emulator
) -> None:
    container = make()
    ent = emulator_entitlement(emulator, "basic")
    seed(container, ent)
    emulator.advance_clock(2 * 3600)
    emulator.faults.configure(
        FaultSettings(checkErrors={ent.usage_reporting_id: "BILLING_DISABLED"})
    )
    summary = report_usage(container)
    assert summary.suspended == [ent.id]
    assert summary.failed
    assert accepted(emulator) == []
    with container.sessions() as session:
        row = session.get(Entitlement, ent.id)
        assert row is not None
        assert (row.service_enabled, row.service_suspended_reason) == (
            False,
            "servicecontrol:BILLING_DISABLED",
        )
        hooks = list(session.scalars(sa.select(HookOutbox.hook)))
        assert hooks == ["entitlement.suspended"]
        audit = session.scalars(sa.select(AuditLog.action)).all()
        assert "usage.service_suspended" in audit
    assert set(statuses(container)) == {"pending"}
    report_usage(container)  # still failing: no second suspension hook
    emulator.faults.clear()
    summary = report_usage(container)
    assert summary.restored == [ent.id]
    assert not summary.failed
    assert set(statuses(container)) == {"accepted"}
    with container.sessions() as session:
        row = session.get(Entitlement, ent.id)
        assert row is not None
        assert row.service_enabled
        hooks = list(session.scalars(sa.select(HookOutbox.hook).order_by(HookOutbox.id)))
        assert hooks == ["entitlement.suspended", "entitlement.restored"]


def test_an_unavailable_check_is_retried_and_never_turns_service_off(
    make: Callable[..., Container], emulator: Emulator
) -> None:
    container = make()
    ent = emulator_entitlement(emulator, "basic")
    seed(container, ent)
    emulator.advance_clock(2 * 3600)
    code = "BILLING_STATUS_UNAVAILABLE"
    emulator.faults.configure(FaultSettings(checkErrors={ent.usage_reporting_id: code}))
    summary = report_usage(container)
    assert summary.failed
    assert summary.suspended == []
    assert summary.retrying >= 2
    with container.sessions() as session:
        row = session.get(Entitlement, ent.id)
        assert row is not None
        assert row.service_enabled
    emulator.faults.clear()
    assert not report_usage(container).failed


class TimeoutAfterSend:
    """Forwards each report to Service Control, then raises a timeout as if the answer was lost."""

    def __init__(self, inner: ServiceControlGateway, times: int) -> None:
        self.inner = inner
        self.times = times

    def check(self, service_name: str, operation: dict[str, Any]) -> dict[str, Any]:
        return self.inner.check(service_name, operation)

    def report(self, service_name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        answer = self.inner.report(service_name, operations)
        if self.times > 0:
            self.times -= 1
            raise TransientServiceControlError("timed out")
        return answer


def test_a_report_whose_answer_was_lost_is_resent_with_the_same_operation_id(
    make: Callable[..., Container], emulator: Emulator
) -> None:
    probe = make()
    wrapper = TimeoutAfterSend(probe.servicecontrol, times=1)
    container = make(gateway=wrapper)
    ent = emulator_entitlement(emulator, "basic")
    seed(container, ent)
    emulator.advance_clock(2 * 3600)
    first = report_usage(container)
    assert first.failed
    assert set(statuses(container)) == {"sent", "pending"} or set(statuses(container)) == {"sent"}
    second = report_usage(container)
    assert not second.failed
    ids = [r["operationId"] for r in accepted(emulator)]
    assert len(ids) == len(set(ids)) == len(statuses(container))
    assert set(statuses(container)) == {"accepted"}


def test_partial_report_errors_are_retried_per_operation_until_all_are_accepted(
    make: Callable[..., Container], emulator: Emulator
) -> None:
    container = make()
    ents = [emulator_entitlement(emulator, "basic") for _ in range(6)]
    seed(container, *ents)
    emulator.advance_clock(3 * 3600)
    emulator.faults.configure(FaultSettings(seed=3, servicecontrol={"reportErrorRate": 0.4}))
    runs = 0
    while report_usage(container).failed:
        runs += 1
        assert runs < 30
    assert runs >= 1
    ids = [r["operationId"] for r in accepted(emulator)]
    assert len(ids) == len(set(ids)) == len(statuses(container))


def test_fractions_of_int64_metrics_carry_into_the_next_window(
    make: Callable[..., Container], emulator: Emulator
) -> None:
    container = make()
    ent = emulator_entitlement(emulator, "basic")
    seed(container, ent)
    emulator.advance_clock(3 * 3600)
    start = ent.active_since
    record_usage(
        container,
        [
            {
                "id": f"r{i}",
                "entitlement": ent.id,
                "metric": "requests",
                "value": "0.6",
                "time": (start + i * H).isoformat(),
            }
            for i in range(3)
        ],
    )
    report_usage(container)
    name = f"{SERVICE}/basic_requests"
    sent = [
        int(v["metricValues"][0]["int64Value"])
        for r in accepted(emulator)
        for v in r["metricValueSets"]
        if v["metricName"] == name
    ]
    assert sent[:3] == [0, 1, 0]  # 0.6 -> 0 (carry .6), 1.2 -> 1 (carry .2), 0.8 -> 0 (carry .8)


def test_dry_run_lists_the_operations_and_changes_nothing(
    make: Callable[..., Container], emulator: Emulator
) -> None:
    container = make()
    ent = emulator_entitlement(emulator, "basic")
    seed(container, ent)
    emulator.advance_clock(2 * 3600)
    record_usage(
        container,
        [
            {
                "id": "a",
                "entitlement": ent.id,
                "metric": "requests",
                "value": 4,
                "time": ent.active_since.isoformat(),
            }
        ],
    )
    summary = report_usage(container, dry_run=True)
    assert summary.operations[0]["operationId"] == operation_id(ent.id, ent.active_since, "basic")
    assert summary.operations[0]["metricValueSets"][0]["metricValues"] == [{"int64Value": "4"}]
    assert statuses(container) == []
    assert accepted(emulator) == []
    assert uuid.UUID(summary.operations[0]["operationId"]).version == 5
