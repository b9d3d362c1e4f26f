"""`marketplace-emulator serve --state PATH` killed with SIGKILL keeps every answered write."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from marketplace_emulator.server import free_port
from tests.e2e.stack import wait_until

PROVIDER = "DEMO-state"
SERVE = str(Path(sys.executable).parent / "marketplace-emulator")


@contextmanager
def served(state: Path, log: Path) -> Iterator[httpx.Client]:
    port = free_port()
    args = [SERVE, "serve", "--port", str(port), "--provider", PROVIDER, "--state", str(state)]
    with log.open("ab") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return client.get("/emulator/v1/status").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, "the emulator to serve")
        yield client
    finally:
        client.close()
        process.send_signal(signal.SIGKILL)  # a crash: no shutdown, no compaction
        process.wait(timeout=10)


def test_a_killed_emulator_restarts_with_every_write_it_answered(tmp_path: Path) -> None:
    state, log = tmp_path / "emulator-state.jsonl", tmp_path / "serve.log"
    with served(state, log) as client:
        bought = client.post(
            f"/emulator/v1/providers/{PROVIDER}/purchases",
            json={"product": "example-product", "plan": "basic"},
        ).json()
        name = bought["entitlement"]["name"]
        account = bought["account"]["name"]
        assert client.post(f"/v1/{account}:approve", json={"approvalName": "signup"}).is_success
        assert client.post(f"/v1/{name}:approve", json={}).is_success
        client.post("/emulator/v1/clock:advance", json={"seconds": 86_400}).raise_for_status()
        clock = client.get("/emulator/v1/clock").json()["now"]
    with served(state, log) as client:
        entitlement = client.get(f"/v1/{name}").json()
        assert entitlement["state"] == "ENTITLEMENT_ACTIVE"
        assert client.get("/emulator/v1/clock").json()["now"] >= clock
