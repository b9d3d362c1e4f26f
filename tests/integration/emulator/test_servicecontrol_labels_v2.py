"""Usage labels on Service Control v1 reports, and Service Control v2 check and report, through
Google's discovery clients (`servicecontrol` v1 and v2) over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from marketplace_emulator.server import Emulator, RunningEmulator
from tests.integration.emulator.test_servicecontrol_client import (
    SERVICE,
    active_entitlement,
    operation,
    report,
)

pytestmark = pytest.mark.integration

RESOURCE = "cloudmarketplace.googleapis.com/resource_name"
CONTAINER = "cloudmarketplace.googleapis.com/container_name"


def _client(version: str, url: str) -> Any:
    return build(
        "servicecontrol",
        version,
        static_discovery=True,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": url},
    )


@pytest.fixture
def running(live_emulator: RunningEmulator, emu: Emulator) -> RunningEmulator:
    """The session's emulator, reset."""
    return live_emulator


@pytest.fixture
def emulator(emu: Emulator) -> Emulator:
    return emu


@pytest.fixture
def servicecontrol(running: RunningEmulator) -> Iterator[Any]:
    client = _client("v1", running.url)
    yield client
    client.close()


@pytest.fixture
def servicecontrol_v2(running: RunningEmulator) -> Iterator[Any]:
    client = _client("v2", running.url)
    yield client
    client.close()


def test_reserved_and_well_formed_labels_are_accepted(
    emulator: Emulator,
    servicecontrol: Any,
) -> None:
    """The two reserved keys and Resource Manager-style labels (as Google's example) pass."""
    _, consumer, start = active_entitlement(emulator)
    labels = {
        RESOURCE: "order_history_cache",
        CONTAINER: "storefront_prod",
        "environment": "prod",
        "region": "us-west2",
        "empty-value": "",
        "équipe": "données",
    }
    out = report(servicecontrol, {**operation("op-ok", consumer, start), "userLabels": labels})
    assert "reportErrors" not in out


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"Environment": "prod"}, "must start with a lowercase letter"),
        ({"env": "Prod"}, "may hold only lowercase letters"),
        ({"cloudmarketplace.googleapis.com/other": "x"}, "may hold only lowercase letters"),
        ({RESOURCE: "Order History"}, "may hold only lowercase letters"),
        ({"k" * 64: "v"}, "1 to 63 characters"),
        ({"env": "v" * 64}, "at most 63 characters"),
        ({f"k{i}": "v" for i in range(65)}, "at most 64"),
    ],
)
def test_a_label_breaking_the_syntax_fails_its_operation_only(
    emulator: Emulator,
    servicecontrol: Any,
    running: RunningEmulator,
    labels: dict[str, str],
    problem: str,
) -> None:
    """The emulator's documented choice: INVALID_ARGUMENT (3) in reportErrors for that operation,
    naming the label; the other operations of the request are recorded."""
    _, consumer, start = active_entitlement(emulator)
    bad = {**operation("op-bad", consumer, start), "userLabels": labels}
    good = operation("op-good", consumer, start, metric="basic_storage_gb")
    out = report(servicecontrol, bad, good)
    [error] = out["reportErrors"]
    assert error["operationId"] == "op-bad"
    assert error["status"]["code"] == 3
    assert problem in error["status"]["message"]
    listed = requests.get(f"{running.url}/emulator/v1/services/{SERVICE}/reports", timeout=5)
    assert [r["operationId"] for r in listed.json()["reports"]] == ["op-good"]


def test_v2_check_allows_a_consumer_in_service_and_denies_others(
    emulator: Emulator, servicecontrol_v2: Any, running: RunningEmulator
) -> None:
    """v2 check: `{}` for the project of an entitlement in service, a PERMISSION_DENIED status
    (SERVICE_NOT_ACTIVATED) for another, and an injected check error's status."""
    _, consumer, _ = active_entitlement(emulator)
    project = "projects/" + consumer.split(":")[1]

    def check(container: str) -> dict[str, Any]:
        body = {
            "serviceConfigId": "latest",
            "attributes": {"api": {"service": SERVICE, "operation": "report"}},
            "resources": [{"name": "db-1", "container": container}],
        }
        result: dict[str, Any] = (
            servicecontrol_v2.services().check(serviceName=SERVICE, body=body).execute()
        )
        return result

    assert check(project) == {}
    denied = check("projects/1")
    assert denied["status"]["code"] == 7
    assert denied["status"]["message"].startswith("SERVICE_NOT_ACTIVATED")
    faults = {"checkErrors": {consumer: "BILLING_DISABLED"}}
    requests.put(f"{running.url}/emulator/v1/faults", json=faults, timeout=5).raise_for_status()
    assert check(project)["status"]["message"].startswith("BILLING_DISABLED")


def test_v2_report_records_operations_and_refuses_malformed_ones(
    emulator: Emulator,
    servicecontrol_v2: Any,
    running: RunningEmulator,
) -> None:
    """v2 report answers `{}` and lists what it received; an unknown field or a missing
    serviceConfigId is 400 INVALID_ARGUMENT for the whole request."""
    services = servicecontrol_v2.services()
    op = {"api": {"service": SERVICE}, "resource": {"name": "db-1", "labels": {"env": "prod"}}}
    body = {"serviceConfigId": "latest", "operations": [op]}
    assert services.report(serviceName=SERVICE, body=body).execute() == {}
    listed = requests.get(f"{running.url}/emulator/v1/services/{SERVICE}/v2Reports", timeout=5)
    assert [r["operation"] for r in listed.json()["reports"]] == [op]
    for bad in ({"operations": [op]}, {"serviceConfigId": "latest", "operations": [{"x": {}}]}):
        with pytest.raises(HttpError) as refused:
            services.report(serviceName=SERVICE, body=bad).execute()
        assert refused.value.resp.status == 400
