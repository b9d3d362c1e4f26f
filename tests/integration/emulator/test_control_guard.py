"""The control API refuses what a web page on another site could send (issue 17, finding 10).

A page a developer visits can post `text/plain` or a form to `http://127.0.0.1:8780` without a
CORS preflight; browsers add its `Origin`. Such posts must change nothing. The emulator's own
pages (same origin) and command-line clients (no `Origin`) keep working.
"""

from __future__ import annotations

import json

import httpx
import pytest

from marketplace_emulator.server import Emulator, RunningEmulator
from tests.integration.emulator.conftest import PROVIDER

pytestmark = pytest.mark.integration

PURCHASE = json.dumps({"product": "example-product", "plan": "basic"})
PATH = f"/emulator/v1/providers/{PROVIDER}/purchases"


def _entitlements(emu: Emulator) -> int:
    return len(emu.notifications(PROVIDER))


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain", "Origin": "https://evil.example"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json", "Origin": "https://evil.example"},
        {"Content-Type": "application/json", "Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},
    ],
)
def test_cross_site_and_non_json_control_posts_are_refused_and_change_nothing(
    control: httpx.Client, emu: Emulator, headers: dict[str, str]
) -> None:
    """A purchase posted as a foreign page could post it is refused (403 or 415)."""
    answer = control.post(PATH, content=PURCHASE, headers=headers)
    assert answer.status_code in (403, 415), answer.text
    assert answer.json()["error"]["message"]
    assert _entitlements(emu) == 0
    reset = control.post("/emulator/v1/reset", headers=headers)
    assert reset.status_code in (403, 415)


def test_same_origin_pages_and_clients_without_origin_keep_working(
    control: httpx.Client, live_emulator: RunningEmulator, emu: Emulator
) -> None:
    """The emulator's own origin, and a JSON client sending no Origin, may act."""
    own = control.post(
        PATH,
        content=PURCHASE,
        headers={"Content-Type": "application/json", "Origin": live_emulator.url},
    )
    assert own.status_code == 201, own.text
    plain_client = control.post(PATH, json={"product": "example-product", "plan": "basic"})
    assert plain_client.status_code == 201
    assert control.post("/emulator/v1/reset").status_code < 300
