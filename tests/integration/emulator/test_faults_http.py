"""Fault injection over real HTTP, seen through Google's discovery clients: injected statuses in
Google's envelope, seeded repeatability, and a cleared configuration serving normally again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from marketplace_emulator.events import RecordingSink
from marketplace_emulator.server import Emulator, RunningEmulator, run_in_thread

pytestmark = pytest.mark.integration

PROVIDER = "DEMO-faults"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    emulator = Emulator(sink=RecordingSink())
    server = run_in_thread(emulator)
    yield server
    server.stop()
    emulator.close()


@pytest.fixture
def procurement(running: RunningEmulator) -> Iterator[Any]:
    running.emulator.reset()
    client = build(
        "cloudcommerceprocurement",
        "v1",
        static_discovery=True,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": running.url},
    )
    yield client
    client.close()


def put_faults(running: RunningEmulator, body: dict[str, Any]) -> None:
    response = requests.put(f"{running.url}/emulator/v1/faults", json=body, timeout=5)
    assert response.status_code == 200, response.text


def outcomes(client: Any, count: int) -> list[int]:
    parent = f"providers/{PROVIDER}"
    seen = []
    for _ in range(count):
        try:
            client.providers().accounts().list(parent=parent).execute()
            seen.append(200)
        except HttpError as error:
            seen.append(error.resp.status)
    return seen


def test_injected_procurement_errors_reach_the_official_client(
    running: RunningEmulator, procurement: Any
) -> None:
    put_faults(running, {"procurement": {"errorRate": 1, "statuses": [429]}})
    with pytest.raises(HttpError) as caught:
        procurement.providers().accounts().list(parent=f"providers/{PROVIDER}").execute()
    assert caught.value.resp.status == 429
    assert b'"RESOURCE_EXHAUSTED"' in caught.value.content
    put_faults(running, {})
    assert outcomes(procurement, 3) == [200, 200, 200]


def test_the_same_seed_replays_the_same_failures_over_http(
    running: RunningEmulator, procurement: Any
) -> None:
    faults = {"seed": 5, "procurement": {"errorRate": 0.4, "statuses": [500, 503]}}
    put_faults(running, faults)
    first = outcomes(procurement, 20)
    put_faults(running, faults)
    assert outcomes(procurement, 20) == first
    assert 200 in first
    assert {500, 503} & set(first)


def test_control_endpoints_still_answer_while_every_api_call_fails(
    running: RunningEmulator, procurement: Any
) -> None:
    put_faults(running, {"procurement": {"errorRate": 1}, "servicecontrol": {"errorRate": 1}})
    shown = requests.get(f"{running.url}/emulator/v1/faults", timeout=5)
    assert shown.json()["procurement"]["errorRate"] == 1
    assert outcomes(procurement, 1) == [503]


def test_a_forgotten_provider_lists_nothing_and_finds_nothing_until_cleared(
    running: RunningEmulator, procurement: Any
) -> None:
    """`forgetProviders`: Procurement answers as if it had lost the provider's data (an
    incident a sync must survive); the data is all there again once the fault is cleared."""
    bought = running.emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    account, entitlement = (resource.to_json()["name"] for resource in bought)
    parent = f"providers/{PROVIDER}"
    put_faults(running, {"procurement": {"forgetProviders": [PROVIDER]}})
    assert procurement.providers().accounts().list(parent=parent).execute() == {}
    assert procurement.providers().entitlements().list(parent=parent).execute() == {}
    for call in (
        procurement.providers().entitlements().get(name=entitlement),
        procurement.providers().accounts().get(name=account),
        procurement.providers().entitlements().approve(name=entitlement, body={}),
    ):
        with pytest.raises(HttpError) as caught:
            call.execute()
        assert caught.value.resp.status == 404
        assert b'"NOT_FOUND"' in caught.value.content
        assert caught.value.content.count(b"not found.") == 1
    put_faults(running, {"procurement": {"forgetProviders": ["DEMO-another"]}})
    assert procurement.providers().entitlements().get(name=entitlement).execute()["name"] == (
        entitlement
    )
    put_faults(running, {})
    listed = procurement.providers().accounts().list(parent=parent).execute()
    assert [a["name"] for a in listed["accounts"]] == [account]
