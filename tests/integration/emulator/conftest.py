"""The Marketplace emulator on a real port, Google's official Procurement client, a control client.

One server serves the whole session (`live_emulator`); `emu` resets its state before each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build

from marketplace_emulator.events import RecordingSink
from marketplace_emulator.server import Emulator, RunningEmulator, run_in_thread

PROVIDER = "DEMO-integration"


@pytest.fixture(scope="session")
def live_emulator() -> Iterator[RunningEmulator]:
    """An emulator served by uvicorn on a free port for the whole session."""
    emulator = Emulator(sink=RecordingSink(), providers=[PROVIDER])
    running = run_in_thread(emulator)
    yield running
    running.stop()
    emulator.close()


@pytest.fixture
def emu(live_emulator: RunningEmulator) -> Emulator:
    """The served emulator, with all state, faults and the clock reset."""
    live_emulator.emulator.reset()
    return live_emulator.emulator


@pytest.fixture
def procurement_api(live_emulator: RunningEmulator, emu: Emulator) -> Iterator[Any]:
    """Google's discovery-based Procurement client, unchanged, pointed at the emulator."""
    service = build(
        "cloudcommerceprocurement",
        "v1",
        static_discovery=True,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": live_emulator.url},
    )
    yield service.providers()
    service.close()


@pytest.fixture
def control(live_emulator: RunningEmulator, emu: Emulator) -> Iterator[httpx.Client]:
    """An HTTP client for the control API (`/emulator/v1/...`)."""
    with httpx.Client(base_url=live_emulator.url, timeout=10.0) as client:
        yield client


def purchase(control: httpx.Client, plan: str = "basic", **extra: Any) -> dict[str, Any]:
    response = control.post(
        f"/emulator/v1/providers/{PROVIDER}/purchases",
        json={"product": "example-product", "plan": plan, **extra},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
