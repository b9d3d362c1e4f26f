"""`/healthz`, `/readyz` (database reachable and migrated), `/metrics` (Prometheus), and the
admin overview's health checks when their container closes."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters import metrics
from marketplace_saas.adapters.procurement import ProcurementGateway
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.entrypoints.web.admin import health
from marketplace_saas.entrypoints.web.app import create_app
from tests.integration.backend.conftest import PROVIDER, ContainerFactory, backend_settings

pytestmark = pytest.mark.integration


def test_healthz_answers_ok(container: Container) -> None:
    with TestClient(create_app(container)) as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_200_on_a_migrated_database(container: Container) -> None:
    with TestClient(create_app(container)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_readyz_is_503_with_the_fix_when_the_database_is_not_migrated(
    tmp_path: Path, emulator_url: str
) -> None:
    settings = backend_settings(f"sqlite:///{tmp_path / 'empty.db'}", emulator_url)
    container = bootstrap(settings)
    try:
        with TestClient(create_app(container)) as client:
            response = client.get("/readyz")
    finally:
        container.close()
    assert response.status_code == 503
    assert response.json()["fix"] == "marketplace-saas db upgrade"


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path, emulator_url: str) -> None:
    missing = tmp_path / "no-such-folder" / "db.sqlite"
    container = bootstrap(backend_settings(f"sqlite:///{missing}", emulator_url))
    try:
        with TestClient(create_app(container)) as client:
            response = client.get("/readyz")
    finally:
        container.close()
    assert response.status_code == 503
    assert response.json()["database"].startswith("unreachable")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_notifications_by_type_and_time_api_calls(
    emulator: Emulator, migrated_database_url: str, emulator_url: str
) -> None:
    settings = backend_settings(migrated_database_url, emulator_url, approval_policy="auto")
    gateway = ProcurementGateway(settings, timeout=10.0)
    container = bootstrap(settings, procurement=metrics.instrumented(gateway, api="procurement"))
    _, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    [created] = [
        p
        for p in emulator.notifications(PROVIDER)
        if p.get("eventType") == "ENTITLEMENT_CREATION_REQUESTED"
    ]
    kind = {"event_type": "ENTITLEMENT_CREATION_REQUESTED", "source": "push"}
    before = {
        "received": sample("marketplace_notifications_received_total", **kind),
        "processed": sample("marketplace_notifications_processed_total", **kind),
        "invalid": sample(
            "marketplace_notifications_received_total", event_type="invalid", source="push"
        ),
        "gets": sample(
            "marketplace_api_calls_total",
            api="procurement",
            method="get_entitlement",
            outcome="ok",
        ),
        "latency": sample(
            "marketplace_api_call_seconds_count", api="procurement", method="get_entitlement"
        ),
    }
    data = base64.b64encode(json.dumps(created).encode()).decode()
    try:
        with TestClient(create_app(container)) as client:
            assert client.post("/pubsub/push", json={"message": {"data": data}}).status_code == 200
            garbage = base64.b64encode(b"garbage").decode()
            assert (
                client.post("/pubsub/push", json={"message": {"data": garbage}}).status_code == 200
            )
            text = client.get("/metrics").text
    finally:
        container.close()
        gateway.close()
    assert sample("marketplace_notifications_received_total", **kind) == before["received"] + 1
    assert sample("marketplace_notifications_processed_total", **kind) == before["processed"] + 1
    invalid_after = sample(
        "marketplace_notifications_received_total", event_type="invalid", source="push"
    )
    assert invalid_after == before["invalid"] + 1
    gets = sample(
        "marketplace_api_calls_total", api="procurement", method="get_entitlement", outcome="ok"
    )
    assert gets > before["gets"]
    latency = sample(
        "marketplace_api_call_seconds_count", api="procurement", method="get_entitlement"
    )
    assert latency > before["latency"]
    assert (
        'marketplace_notifications_processed_total{event_type="ENTITLEMENT_CREATION_REQUESTED"'
        in text
    )
    assert "marketplace_api_call_seconds_bucket" in text
    assert entitlement.id


class HeldProbe:
    """The Procurement gateway, with the health check's `get_account` held until released."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.release = threading.Event()
        self.answered = threading.Event()
        self.events: list[str] = []

    def get_account(self, account_id: str) -> Any:
        self.release.wait(60)
        answer = self.inner.get_account(account_id)
        self.events.append("probe answered")
        self.answered.set()
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_closing_the_container_waits_for_a_health_check_still_running(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """A check the overview stopped waiting for ("no answer") ends before the container closes
    its engine and gateways: run after, it would open a connection that nothing closes."""
    container = make_container()
    probe = HeldProbe(container.procurement)
    container.procurement = probe
    checks = {check.name: check for check in health.run_checks(container, timeout=0.05)}
    assert checks["Procurement API"].status == "unknown"

    def close() -> None:
        container.close()
        probe.events.append("closed")

    closer = threading.Thread(target=close)
    closer.start()
    closer.join(2)  # gives a close() that does not wait the time to end first
    probe.release.set()
    assert probe.answered.wait(60)
    closer.join(60)
    assert probe.events == ["probe answered", "closed"]
