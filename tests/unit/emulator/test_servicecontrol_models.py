"""The Service Control rules: entitlement over the window, declared metrics, int64 strings,
duplicates, operationId dedupe, overlapping windows, partial failure, injected faults."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from marketplace_emulator.catalog import DEFAULT_SERVICE_NAME, Catalog
from marketplace_emulator.clock import Clock, rfc3339
from marketplace_emulator.faults import FaultInjector, FaultSettings
from marketplace_emulator.servicecontrol.exceptions import InvalidArgument, ServiceNotKnown
from marketplace_emulator.servicecontrol.models import ServiceControlBackend

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SERVICE = DEFAULT_SERVICE_NAME
CONSUMER = "project_number:100000000001"
BASIC_REQUESTS = f"{SERVICE}/basic_requests"
BASIC_STORAGE = f"{SERVICE}/basic_storage_gb"
PRO_REQUESTS = f"{SERVICE}/pro_requests"


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime | None
    plan: str

    def contains(self, time: datetime) -> bool:
        return self.start <= time and (self.end is None or time < self.end)


@dataclass
class Entitlement:
    id: str
    plan: str
    usage_reporting_id: str = CONSUMER
    provider: str = "DEMO-p"
    account_id: str = "acct-1"
    product: str = "example-product"
    state: str = "ENTITLEMENT_ACTIVE"
    periods: list[Period] = field(default_factory=list)


@dataclass
class Procurement:
    entitlements: list[Entitlement] = field(default_factory=list)

    def find_by_usage_reporting_id(
        self, consumer_id: str, include_deleted: bool = False
    ) -> Sequence[Entitlement]:
        return [e for e in self.entitlements if e.usage_reporting_id == consumer_id]


@dataclass
class World:
    backend: ServiceControlBackend
    procurement: Procurement
    faults: FaultInjector


@pytest.fixture
def world() -> World:
    catalog = Catalog()
    catalog.products("DEMO-p")  # the provider's default catalog
    procurement = Procurement(
        [Entitlement("e1", "basic", periods=[Period(T0 - 24 * HOUR, None, "basic")])]
    )
    faults = FaultInjector()
    clock = Clock(now=lambda: T0 + 48 * HOUR)
    return World(ServiceControlBackend(procurement, catalog, clock, faults), procurement, faults)


def op(
    op_id: str = "op-1",
    start: datetime = T0,
    end: datetime | None = T0 + HOUR,
    metric: str = BASIC_REQUESTS,
    value: Any = "10",
    consumer: str = CONSUMER,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operationId": op_id,
        "operationName": "Hourly Usage Report",
        "consumerId": consumer,
        "startTime": rfc3339(start),
        "metricValueSets": [{"metricName": metric, "metricValues": [{"int64Value": value}]}],
        **extra,
    }
    if end is not None:
        body["endTime"] = rfc3339(end)
    return body


def report(world: World, *ops: dict[str, Any]) -> dict[str, Any]:
    return world.backend.report(SERVICE, {"operations": list(ops)})


def error_codes(response: dict[str, Any]) -> dict[str, int]:
    return {e["operationId"]: e["status"]["code"] for e in response.get("reportErrors", [])}


# -- check ----------------------------------------------------------------------------------------


def test_check_passes_for_a_consumer_holding_the_entitlement(world: World) -> None:
    out = world.backend.check(SERVICE, {"operation": op(end=None)})
    assert "checkErrors" not in out
    assert out["operationId"] == "op-1"
    assert out["checkInfo"]["consumerInfo"]["projectNumber"] == "100000000001"


def test_check_answers_service_not_activated_for_an_unknown_consumer(world: World) -> None:
    out = world.backend.check(SERVICE, {"operation": op(consumer="project_number:9")})
    [error] = out["checkErrors"]
    assert error["code"] == "SERVICE_NOT_ACTIVATED"
    assert error["subject"] == "project_number:9"
    assert error["status"]["code"] == 7
    assert error["detail"]


def test_check_uses_the_history_an_ended_entitlement_fails_after_its_end(world: World) -> None:
    world.procurement.entitlements[0].periods = [Period(T0 - 24 * HOUR, T0, "basic")]
    before = world.backend.check(SERVICE, {"operation": op(start=T0 - HOUR)})
    after = world.backend.check(SERVICE, {"operation": op(start=T0)})
    assert "checkErrors" not in before
    assert after["checkErrors"][0]["code"] == "SERVICE_NOT_ACTIVATED"


def test_check_answers_the_injected_check_error_for_that_consumer_only(world: World) -> None:
    world.faults.configure(
        FaultSettings.model_validate({"checkErrors": {CONSUMER: "BILLING_DISABLED"}})
    )
    out = world.backend.check(SERVICE, {"operation": op()})
    assert out["checkErrors"][0]["code"] == "BILLING_DISABLED"
    other = world.backend.check(SERVICE, {"operation": op(consumer="project_number:9")})
    assert other["checkErrors"][0]["code"] == "SERVICE_NOT_ACTIVATED"


def test_check_maps_unavailable_codes_to_status_unavailable(world: World) -> None:
    world.faults.configure(
        FaultSettings.model_validate({"checkErrors": {CONSUMER: "BILLING_STATUS_UNAVAILABLE"}})
    )
    [error] = world.backend.check(SERVICE, {"operation": op()})["checkErrors"]
    assert error["status"]["code"] == 14


@pytest.mark.parametrize("metric", [f"{SERVICE}/nope", PRO_REQUESTS, "basic_requests"])
def test_check_rejects_a_metric_not_declared_for_the_plan(world: World, metric: str) -> None:
    with pytest.raises(InvalidArgument, match="not declared"):
        world.backend.check(SERVICE, {"operation": op(metric=metric)})


def test_check_accepts_user_labels(world: World) -> None:
    out = world.backend.check(SERVICE, {"operation": op(userLabels={"env": "prod"})})
    assert "checkErrors" not in out


def test_skip_activation_check_lets_an_unknown_consumer_through(world: World) -> None:
    body = {"operation": op(consumer="project_number:9"), "skipActivationCheck": True}
    assert "checkErrors" not in world.backend.check(SERVICE, body)


def test_unknown_service_is_permission_denied(world: World) -> None:
    with pytest.raises(ServiceNotKnown) as caught:
        world.backend.check("nope.example.com", {"operation": op()})
    assert caught.value.http_status == 403


# -- report ---------------------------------------------------------------------------------------


def test_report_records_the_operation_with_its_plan_and_user_labels(world: World) -> None:
    labels = {"cloudmarketplace.googleapis.com/resource_name": "cache", "env": "prod"}
    out = report(world, op(userLabels=labels))
    assert "reportErrors" not in out
    [accepted] = world.backend.accepted_reports(SERVICE)
    record = accepted.to_json()
    assert record["plan"] == "basic"
    assert record["entitlement"] == "e1"
    assert record["consumerId"] == CONSUMER
    assert record["userLabels"] == labels
    assert record["metricValueSets"][0]["metricValues"] == [{"int64Value": "10"}]
    assert record["startTime"] == rfc3339(T0)
    assert record["endTime"] == rfc3339(T0 + HOUR)


def test_int64_given_as_a_json_number_rejects_the_request(world: World) -> None:
    with pytest.raises(InvalidArgument, match="int64"):
        report(world, op(value=10))
    assert world.backend.accepted_reports() == []


def test_duplicate_metric_values_reject_the_whole_request(world: World) -> None:
    bad = op("op-2", start=T0 + HOUR, end=T0 + 2 * HOUR)
    bad["metricValueSets"].append(
        {"metricName": BASIC_REQUESTS, "metricValues": [{"int64Value": "1"}]}
    )
    with pytest.raises(InvalidArgument, match="Duplicate metric value"):
        report(world, op(), bad)
    assert world.backend.accepted_reports() == []


def test_same_metric_with_different_labels_is_not_a_duplicate(world: World) -> None:
    body = op()
    body["metricValueSets"][0]["metricValues"] = [
        {"int64Value": "1", "labels": {"region": "eu"}},
        {"int64Value": "2", "labels": {"region": "us"}},
    ]
    assert "reportErrors" not in report(world, body)


def test_partial_failure_reports_only_the_failing_operation(world: World) -> None:
    out = report(world, op("good"), op("bad", consumer="project_number:9"))
    assert error_codes(out) == {"bad": 7}
    assert "SERVICE_NOT_ACTIVATED" in out["reportErrors"][0]["status"]["message"]
    assert [a.operation.operation_id for a in world.backend.accepted_reports()] == ["good"]


def test_a_repeated_identical_operation_is_accepted_and_counted_once(world: World) -> None:
    assert "reportErrors" not in report(world, op())
    assert "reportErrors" not in report(world, op())
    assert len(world.backend.accepted_reports(SERVICE)) == 1


def test_a_repeated_operation_id_with_other_content_is_refused(world: World) -> None:
    report(world, op())
    out = report(world, op(value="11", start=T0 + HOUR, end=T0 + 2 * HOUR))
    assert error_codes(out) == {"op-1": 6}
    assert len(world.backend.accepted_reports()) == 1


def test_an_overlapping_window_for_the_same_metric_is_refused(world: World) -> None:
    report(world, op())
    out = report(world, op("op-2", start=T0 + HOUR / 2, end=T0 + 2 * HOUR))
    assert error_codes(out) == {"op-2": 3}
    assert "overlaps" in out["reportErrors"][0]["status"]["message"]


def test_contiguous_windows_and_other_metrics_do_not_overlap(world: World) -> None:
    report(world, op())
    out = report(
        world,
        op("op-2", start=T0 + HOUR, end=T0 + 2 * HOUR),
        op("op-3", metric=BASIC_STORAGE),
    )
    assert "reportErrors" not in out
    assert len(world.backend.accepted_reports()) == 3


@pytest.mark.parametrize(("start", "end"), [(T0 + HOUR, T0 + HOUR), (T0 + HOUR, T0), (T0, None)])
def test_report_needs_an_end_time_after_the_start(
    world: World, start: datetime, end: datetime | None
) -> None:
    out = report(world, op(start=start, end=end))
    assert error_codes(out) == {"op-1": 3}


def test_the_plan_that_held_at_start_time_decides_the_metric_names(world: World) -> None:
    world.procurement.entitlements[0].periods = [
        Period(T0 - 24 * HOUR, T0 + HOUR, "basic"),
        Period(T0 + HOUR, None, "pro"),
    ]
    out = report(
        world,
        op("old", metric=BASIC_REQUESTS),
        op("new", start=T0 + HOUR, end=T0 + 2 * HOUR, metric=PRO_REQUESTS),
        op("wrong", start=T0 + 2 * HOUR, end=T0 + 3 * HOUR, metric=BASIC_REQUESTS),
    )
    assert error_codes(out) == {"wrong": 3}
    assert [a.plan for a in world.backend.accepted_reports()] == ["basic", "pro"]


def test_a_plan_that_is_not_usage_billed_is_not_reportable(world: World) -> None:
    world.procurement.entitlements[0].periods = [Period(T0 - HOUR, None, "flat")]
    assert error_codes(report(world, op())) == {"op-1": 7}


def test_report_error_rate_one_fails_every_operation_and_records_none(world: World) -> None:
    world.faults.configure(
        FaultSettings.model_validate({"servicecontrol": {"reportErrorRate": 1.0}})
    )
    out = report(world, op(), op("op-2", metric=BASIC_STORAGE))
    assert error_codes(out) == {"op-1": 14, "op-2": 14}
    assert world.backend.accepted_reports() == []


def test_report_error_rate_is_repeatable_with_the_same_seed(world: World) -> None:
    settings = FaultSettings.model_validate({"seed": 7, "servicecontrol": {"reportErrorRate": 0.5}})
    ops = [op(f"op-{i}", start=T0 + i * HOUR, end=T0 + (i + 1) * HOUR) for i in range(16)]
    world.faults.configure(settings)
    first = error_codes(report(world, *ops))
    world.backend.reset()
    world.faults.configure(settings)
    second = error_codes(report(world, *ops))
    assert first == second
    assert 0 < len(first) < 16


def test_max_lateness_refuses_reports_that_ended_too_long_ago(world: World) -> None:
    world.faults.configure(
        FaultSettings.model_validate({"servicecontrol": {"maxLatenessSeconds": 3600}})
    )
    # The clock reads T0 + 48 h: a window ending at T0 + 1 h is 47 hours late.
    assert error_codes(report(world, op())) == {"op-1": 3}
    fresh = op("op-2", start=T0 + 47 * HOUR, end=T0 + 48 * HOUR)
    assert "reportErrors" not in report(world, fresh)


def test_reset_forgets_accepted_reports_and_their_windows(world: World) -> None:
    report(world, op())
    world.backend.reset()
    assert world.backend.accepted_reports() == []
    assert "reportErrors" not in report(world, op("op-again"))


def test_accepted_reports_filters_by_service(world: World) -> None:
    report(world, op())
    assert world.backend.accepted_reports("other.example.com") == []
    assert len(world.backend.accepted_reports()) == 1
