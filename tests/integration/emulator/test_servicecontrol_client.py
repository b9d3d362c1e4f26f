"""Service Control over real HTTP with Google's discovery client: check, report, partial failure,
plan history from the procurement emulator, injected check errors and HTTP faults."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from marketplace_emulator.catalog import DEFAULT_SERVICE_NAME
from marketplace_emulator.clock import rfc3339
from marketplace_emulator.events import RecordingSink
from marketplace_emulator.server import Emulator, RunningEmulator, run_in_thread

pytestmark = pytest.mark.integration

PROVIDER = "DEMO-sc"
SERVICE = DEFAULT_SERVICE_NAME
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    emulator = Emulator(sink=RecordingSink())
    server = run_in_thread(emulator)
    yield server
    server.stop()
    emulator.close()


@pytest.fixture
def emulator(running: RunningEmulator) -> Emulator:
    running.emulator.reset()
    return running.emulator


@pytest.fixture(scope="module")
def servicecontrol(running: RunningEmulator) -> Iterator[Any]:
    client = build(
        "servicecontrol",
        "v1",
        static_discovery=True,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": running.url},
    )
    yield client
    client.close()


def active_entitlement(emulator: Emulator, plan: str = "basic") -> tuple[str, str, datetime]:
    """Buy and approve `plan`; the entitlement id, its consumer id, and when it became active."""
    procurement = emulator.procurement
    account, entitlement = procurement.purchase(PROVIDER, "example-product", plan)
    procurement.approve_account(PROVIDER, account.id, "signup")
    procurement.approve_entitlement(PROVIDER, entitlement.id)
    [current] = procurement.find_by_usage_reporting_id(entitlement.usage_reporting_id)
    assert current.state == "ENTITLEMENT_ACTIVE"
    return entitlement.id, entitlement.usage_reporting_id, current.periods[0].start


def operation(
    op_id: str, consumer: str, start: datetime, metric: str = "basic_requests", value: str = "7"
) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "operationName": "Hourly Usage Report",
        "consumerId": consumer,
        "startTime": rfc3339(start),
        "endTime": rfc3339(start + HOUR),
        "metricValueSets": [
            {"metricName": f"{SERVICE}/{metric}", "metricValues": [{"int64Value": value}]}
        ],
    }


def check(client: Any, op: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (
        client.services().check(serviceName=SERVICE, body={"operation": op}).execute()
    )
    return result


def report(client: Any, *ops: dict[str, Any]) -> dict[str, Any]:
    body = {"operations": list(ops)}
    result: dict[str, Any] = client.services().report(serviceName=SERVICE, body=body).execute()
    return result


def test_check_then_report_with_the_same_operation_id_is_accepted_and_listed(
    emulator: Emulator, servicecontrol: Any, running: RunningEmulator
) -> None:
    entitlement, consumer, start = active_entitlement(emulator)
    op = operation("op-1", consumer, start)
    assert "checkErrors" not in check(servicecontrol, op)
    labels = {"cloudmarketplace.googleapis.com/resource_name": "db-1"}
    assert "reportErrors" not in report(servicecontrol, {**op, "userLabels": labels})
    listed = requests.get(f"{running.url}/emulator/v1/services/{SERVICE}/reports", timeout=5)
    [record] = listed.json()["reports"]
    assert record["entitlement"] == entitlement
    assert (record["consumerId"], record["operationId"], record["plan"]) == (
        consumer,
        "op-1",
        "basic",
    )
    assert record["userLabels"] == labels
    assert record["metricValueSets"][0]["metricValues"] == [{"int64Value": "7"}]


def test_an_unknown_consumer_gets_service_not_activated(
    emulator: Emulator, servicecontrol: Any
) -> None:
    _, _, start = active_entitlement(emulator)
    out = check(servicecontrol, operation("op-1", "project_number:1", start))
    assert [e["code"] for e in out["checkErrors"]] == ["SERVICE_NOT_ACTIVATED"]


def test_partial_failure_comes_back_in_report_errors_with_http_200(
    emulator: Emulator, servicecontrol: Any
) -> None:
    _, consumer, start = active_entitlement(emulator)
    out = report(
        servicecontrol,
        operation("good", consumer, start),
        operation("unknown-metric", consumer, start + HOUR, metric="pro_requests"),
        operation("overlap", consumer, start + HOUR / 2),
    )
    assert {e["operationId"]: e["status"]["code"] for e in out["reportErrors"]} == {
        "unknown-metric": 3,
        "overlap": 3,
    }
    assert [a.operation.operation_id for a in emulator.servicecontrol.accepted_reports()] == [
        "good"
    ]


def test_int64_as_a_json_number_is_a_400_invalid_argument(
    emulator: Emulator, servicecontrol: Any
) -> None:
    _, consumer, start = active_entitlement(emulator)
    op = operation("op-1", consumer, start)
    op["metricValueSets"][0]["metricValues"] = [{"int64Value": 7}]
    with pytest.raises(HttpError) as caught:
        report(servicecontrol, op)
    assert caught.value.resp.status == 400
    assert b"INVALID_ARGUMENT" in caught.value.content


def test_the_plan_history_decides_which_metrics_a_window_may_report(
    emulator: Emulator, servicecontrol: Any
) -> None:
    entitlement, consumer, start = active_entitlement(emulator)
    emulator.advance_clock(2 * 3600)
    emulator.procurement.change_plan(PROVIDER, entitlement, "pro")
    emulator.procurement.approve_plan_change(PROVIDER, entitlement, "pro")
    changed = start + 2 * HOUR
    later = changed + HOUR
    out = report(
        servicecontrol,
        operation("basic-hour", consumer, start),
        operation("pro-hour", consumer, later, metric="pro_requests"),
        operation("stale-metric", consumer, later + HOUR, metric="basic_requests"),
    )
    assert [e["operationId"] for e in out["reportErrors"]] == ["stale-metric"]
    plans = [a.plan for a in emulator.servicecontrol.accepted_reports(SERVICE)]
    assert plans == ["basic", "pro"]


def test_after_cancellation_only_windows_that_started_before_it_are_reportable(
    emulator: Emulator, servicecontrol: Any
) -> None:
    entitlement, consumer, start = active_entitlement(emulator)
    emulator.advance_clock(2 * 3600)
    emulator.procurement.cancel(PROVIDER, entitlement, at_term_end=False)
    assert "checkErrors" not in check(servicecontrol, operation("before", consumer, start))
    after = check(servicecontrol, operation("after", consumer, start + 3 * HOUR))
    assert after["checkErrors"][0]["code"] == "SERVICE_NOT_ACTIVATED"


def test_check_errors_injected_over_http_reach_the_client(
    emulator: Emulator, servicecontrol: Any, running: RunningEmulator
) -> None:
    _, consumer, start = active_entitlement(emulator)
    faults = {"checkErrors": {consumer: "PROJECT_DELETED"}}
    assert requests.put(f"{running.url}/emulator/v1/faults", json=faults, timeout=5).ok
    [error] = check(servicecontrol, operation("op-1", consumer, start))["checkErrors"]
    assert (error["code"], error["subject"]) == ("PROJECT_DELETED", consumer)


def test_injected_http_errors_reach_the_client_in_googles_envelope(
    emulator: Emulator, servicecontrol: Any, running: RunningEmulator
) -> None:
    _, consumer, start = active_entitlement(emulator)
    faults = {"servicecontrol": {"errorRate": 1, "statuses": [503]}}
    requests.put(f"{running.url}/emulator/v1/faults", json=faults, timeout=5)
    with pytest.raises(HttpError) as caught:
        report(servicecontrol, operation("op-1", consumer, start))
    assert caught.value.resp.status == 503
    assert b'"UNAVAILABLE"' in caught.value.content
    assert emulator.servicecontrol.accepted_reports() == []
