"""Fault settings over HTTP and the fault middleware: validation, clearing, seeded repeatable
errors in Google's envelope, latency, and which paths are never faulted."""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from marketplace_emulator.control.faults import router as faults_router
from marketplace_emulator.errors import install_error_handlers
from marketplace_emulator.faults import FaultInjector
from marketplace_emulator.middleware import FaultMiddleware, api_of

with warnings.catch_warnings():  # Starlette asks for httpx2, which the project does not install
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

PROCUREMENT = "/v1/providers/DEMO-p/entitlements/e1"
SERVICECONTROL = "/v1/services/svc.example.com:check"


class Setup:
    def __init__(self) -> None:
        self.faults = FaultInjector()
        self.slept: list[float] = []
        app = FastAPI()
        install_error_handlers(app)

        async def record_sleep(seconds: float) -> None:
            self.slept.append(seconds)

        app.add_middleware(FaultMiddleware, sleep=record_sleep)
        app.include_router(faults_router)
        app.state.emulator = SimpleNamespace(faults=self.faults)

        @app.get("/v1/providers/{rest:path}")
        @app.get("/robot/v1/metadata/x509/{rest:path}")
        @app.get("/emulator/v1/ping")
        def ok() -> dict[str, bool]:
            return {"ok": True}

        @app.post("/v1/services/{rest:path}")
        def sc_ok() -> dict[str, bool]:
            return {"ok": True}

        self.client = TestClient(app)

    def put(self, body: Any) -> Any:
        return self.client.put("/emulator/v1/faults", json=body)


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_put_replaces_the_settings_and_get_shows_them(setup: Setup) -> None:
    body = {
        "seed": 1,
        "procurement": {"errorRate": 0.2, "statuses": [429, 500, 503], "latencyMs": 0},
        "servicecontrol": {"errorRate": 0, "statuses": [503], "latencyMs": 0, "reportErrorRate": 0},
        "notifications": {"duplicateRate": 0, "reorder": False, "delayMs": 0},
        "checkErrors": {"project_number:1": "BILLING_DISABLED"},
    }
    assert setup.put(body).status_code == 200
    shown = setup.client.get("/emulator/v1/faults").json()
    assert shown["procurement"]["errorRate"] == 0.2
    assert shown["checkErrors"] == {"project_number:1": "BILLING_DISABLED"}
    assert setup.faults.check_error_for("project_number:1") == "BILLING_DISABLED"


def test_put_is_a_full_replacement_and_empty_clears(setup: Setup) -> None:
    setup.put({"procurement": {"errorRate": 1}, "checkErrors": {"c": "PROJECT_DELETED"}})
    setup.put({"servicecontrol": {"latencyMs": 5}})
    assert setup.faults.settings.procurement.error_rate == 0
    assert setup.faults.check_error_for("c") is None
    setup.put({})
    assert setup.client.get("/emulator/v1/faults").json() == setup.faults.settings.to_json()
    assert setup.faults.settings.servicecontrol.latency_ms == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"procurement": {"errorRate": 2}}, "procurement.errorRate"),
        ({"procurement": {"statuses": [418]}}, "unsupported statuses [418]"),
        ({"procurement": {"statuses": []}}, "at least one"),
        ({"servicecontrol": {"latencyMs": -1}}, "servicecontrol.latencyMs"),
        ({"checkErrors": {"c": "NOPE"}}, "unknown code 'NOPE'"),
        ({"bogus": 1}, "bogus"),
        ({"notifications": {"reorder": "sometimes"}}, "notifications.reorder"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_settings_are_invalid_argument_with_a_clear_message(
    setup: Setup, body: Any, words: str
) -> None:
    before = setup.faults.settings
    response = setup.put(body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert words in error["message"]
    assert setup.faults.settings is before


@pytest.mark.parametrize("raw", [b"{nope", b"[" * 100_000, b"\xff"])
def test_malformed_json_is_invalid_argument(setup: Setup, raw: bytes) -> None:
    response = setup.client.put("/emulator/v1/faults", content=raw)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ],
)
def test_injected_errors_use_googles_envelope_with_the_matching_status_name(
    setup: Setup, status: int, name: str
) -> None:
    setup.put({"procurement": {"errorRate": 1, "statuses": [status]}})
    response = setup.client.get(PROCUREMENT)
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (status, name)
    assert error["message"]


def test_each_api_has_its_own_fault_settings(setup: Setup) -> None:
    setup.put({"servicecontrol": {"errorRate": 1, "statuses": [503]}})
    assert setup.client.get(PROCUREMENT).status_code == 200
    assert setup.client.post(SERVICECONTROL).status_code == 503


def test_control_and_identity_endpoints_are_never_faulted(setup: Setup) -> None:
    setup.put({"procurement": {"errorRate": 1}, "servicecontrol": {"errorRate": 1}})
    assert setup.client.get("/emulator/v1/ping").status_code == 200
    assert setup.client.get("/robot/v1/metadata/x509/x@y").status_code == 200
    assert setup.client.get("/emulator/v1/faults").status_code == 200


def test_the_same_seed_gives_the_same_sequence_of_failures(setup: Setup) -> None:
    settings = {"seed": 42, "procurement": {"errorRate": 0.5, "statuses": [429, 500, 503]}}

    def run() -> list[int]:
        setup.put(settings)
        return [setup.client.get(PROCUREMENT).status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert 200 in first
    assert {429, 500, 503} & set(first)
    setup.put({**settings, "seed": 43})
    assert [setup.client.get(PROCUREMENT).status_code for _ in range(30)] != first


def test_latency_is_added_before_each_faulted_api_call(setup: Setup) -> None:
    setup.put({"procurement": {"latencyMs": 250}})
    setup.client.get(PROCUREMENT)
    setup.client.get("/emulator/v1/ping")
    assert setup.slept == [0.25]


def test_paths_are_classified_by_api() -> None:
    assert api_of("/v1/providers/p/accounts") == "procurement"
    assert api_of("/v1/services/s:report") == "servicecontrol"
    assert api_of("/emulator/v1/faults") is None
    assert api_of("/robot/v1/metadata/jwk/x") is None
