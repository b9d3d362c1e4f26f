"""Service Control over HTTP (in-process): Google's envelope for errors, the 1 MB limit, the
accepted-reports listing, and no input that makes it answer 500."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from marketplace_emulator.catalog import DEFAULT_SERVICE_NAME, Catalog
from marketplace_emulator.clock import Clock
from marketplace_emulator.errors import install_error_handlers
from marketplace_emulator.faults import FaultInjector
from marketplace_emulator.servicecontrol import ServiceControlBackend, router

with warnings.catch_warnings():  # Starlette asks for httpx2, which the project does not install
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

SERVICE = DEFAULT_SERVICE_NAME
CONSUMER = "project_number:100000000001"


class _Period:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = None
    plan = "basic"

    def contains(self, time: datetime) -> bool:
        return self.start <= time


class _Entitlement:
    id = "e1"
    provider = "DEMO-p"
    account_id = "acct-1"
    product = "example-product"
    plan = "basic"
    state = "ENTITLEMENT_ACTIVE"
    usage_reporting_id = CONSUMER
    periods = (_Period(),)


class _Procurement:
    def find_by_usage_reporting_id(
        self, consumer_id: str, include_deleted: bool = False
    ) -> Sequence[_Entitlement]:
        return [_Entitlement()] if consumer_id == CONSUMER else []


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    backend = ServiceControlBackend(_Procurement(), Catalog(), Clock(), FaultInjector())
    app.state.emulator = SimpleNamespace(servicecontrol=backend)
    return TestClient(app)


def operation(op_id: str, hour: int) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "consumerId": CONSUMER,
        "startTime": f"2026-03-01T{hour:02d}:00:00Z",
        "endTime": f"2026-03-01T{hour + 1:02d}:00:00Z",
        "metricValueSets": [
            {"metricName": f"{SERVICE}/basic_requests", "metricValues": [{"int64Value": "3"}]}
        ],
        "userLabels": {"env": "test"},
    }


def test_report_then_list_accepted_reports(client: TestClient) -> None:
    response = client.post(
        f"/v1/services/{SERVICE}:report", json={"operations": [operation("r1", 1)]}
    )
    assert response.status_code == 200
    assert "reportErrors" not in response.json()
    listed = client.get(f"/emulator/v1/services/{SERVICE}/reports").json()["reports"]
    assert [(r["operationId"], r["plan"], r["userLabels"]) for r in listed] == [
        ("r1", "basic", {"env": "test"})
    ]
    assert client.get("/emulator/v1/reports").json()["reports"] == listed


def test_check_answers_the_check_response_shape(client: TestClient) -> None:
    response = client.post(f"/v1/services/{SERVICE}:check", json={"operation": operation("c1", 2)})
    assert response.status_code == 200
    body = response.json()
    assert body["operationId"] == "c1"
    assert body["checkInfo"]["consumerInfo"]["type"] == "PROJECT"
    assert body["serviceConfigId"]


def test_a_body_over_one_megabyte_is_invalid_argument(client: TestClient) -> None:
    big = json.dumps({"operations": [], "serviceConfigId": "x" * (1024 * 1024)})
    response = client.post(
        f"/v1/services/{SERVICE}:report",
        content=big,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "exceeds the limit" in response.json()["error"]["message"]


def test_duplicate_metric_values_answer_400_in_googles_envelope(client: TestClient) -> None:
    op = operation("d1", 5)
    op["metricValueSets"] *= 2
    response = client.post(f"/v1/services/{SERVICE}:report", json={"operations": [op]})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": 400,
        "message": response.json()["error"]["message"],
        "status": "INVALID_ARGUMENT",
    }


def test_unknown_service_answers_403_permission_denied(client: TestClient) -> None:
    response = client.post(
        "/v1/services/nope.example.com:check", json={"operation": operation("u", 1)}
    )
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=12,
)
_op_keys = st.sampled_from(
    ["operationId", "consumerId", "startTime", "endTime", "metricValueSets", "userLabels", "x"]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["check", "report"]),
    op=st.dictionaries(_op_keys, _json, max_size=6),
    noise=_json,
)
def test_no_body_makes_service_control_answer_500(
    client: TestClient, method: str, op: dict[str, Any], noise: Any
) -> None:
    for body in (
        {"operation": op, "operations": [op]},
        {"operations": [op]},
        {"operation": op},
        noise,
    ):
        response = client.post(f"/v1/services/{SERVICE}:{method}", json=body)
        assert response.status_code < 500, response.text
