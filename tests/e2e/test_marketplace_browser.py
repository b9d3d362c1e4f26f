"""The buyer's page in Chromium against `marketplace-saas serve` (sandbox), and a restart that keeps
every customer (`make run` twice).

`marketplace-saas serve` runs as a subprocess on free ports with a SQLite file in a temporary
folder, so its emulator keeps its state in `marketplace.sandbox/emulator-state.jsonl` beside it.
A buyer subscribes on the emulator's `/marketplace` page, which POSTs the sign-up JWT to the
backend's `/signup`; the buyer signs up; the server stops and starts again; the customer, the
account and the entitlement are all still there and ACTIVE, nothing is marked deleted, no
`account.deleted` hook is queued, and a `sync` agrees. Screenshots: `test-output/marketplace/`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from marketplace_emulator.server import free_port
from marketplace_saas.adapters.db.models import Account, Entitlement, HookOutbox
from tests.e2e.stack import wait_until

pytestmark = pytest.mark.e2e

PROVIDER = "DEMO-sandbox"
BIN = Path(sys.executable).parent


@contextmanager
def serve(folder: Path, port: int, emulator_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`marketplace-saas serve` in the sandbox until the block ends (then SIGTERM, as Ctrl-C)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("GOOGLE_CLOUD_PROJECT", "PROCUREMENT_API_ENDPOINT", "PUBSUB_EMULATOR_HOST")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{folder / 'marketplace.db'}",
        MARKETPLACE_SANDBOX="1",
        MARKETPLACE_PROVIDER_ID=PROVIDER,
        SYNC_INTERVAL_SECONDS="3600",
    )
    log = (folder / "serve.log").open("ab")
    args = ["serve", "--port", str(port), "--emulator-port", str(emulator_port)]
    process = subprocess.Popen(
        [str(BIN / "marketplace-saas"), *args],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"serve exited: {(folder / 'serve.log').read_text()}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, "marketplace-saas serve to be ready", timeout=60)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _records(folder: Path, entitlement_id: str) -> tuple[Account, Entitlement, list[str]]:
    engine = sa.create_engine(f"sqlite:///{folder / 'marketplace.db'}")
    try:
        with engine.connect() as connection:
            entitlement = connection.execute(
                sa.select(Entitlement.__table__).where(Entitlement.id == entitlement_id)
            ).one()
            account = connection.execute(
                sa.select(Account.__table__).where(Account.id == entitlement.account_id)
            ).one()
            hooks = list(connection.scalars(sa.select(HookOutbox.hook)))
    finally:
        engine.dispose()
    return account, entitlement, hooks  # type: ignore[return-value]


def test_a_buyer_subscribes_on_the_marketplace_page_and_a_restart_keeps_the_customer(
    page: Any, tmp_path: Path, test_output_dir: Path, request: pytest.FixtureRequest
) -> None:
    shots = test_output_dir / "marketplace"
    shots.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    port, emulator_port = free_port(), free_port()
    backend, emulator = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{emulator_port}"
    api = httpx.Client(base_url=emulator, timeout=10)
    request.addfinalizer(api.close)

    def entitlement(entitlement_id: str) -> dict[str, Any]:
        answer = api.get(f"/v1/providers/{PROVIDER}/entitlements/{entitlement_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    with serve(tmp_path, port, emulator_port):
        page.goto(f"{emulator}/marketplace")
        assert page.url == f"{emulator}/marketplace/{PROVIDER}"
        assert page.get_by_text("$50 per month + usage").is_visible()
        assert page.get_by_text("No orders yet").is_visible()
        shot("1-listing")

        pro = page.locator(".plan", has_text="pro")
        with page.expect_navigation(url=f"{backend}/signup"):
            pro.get_by_role("button", name="Subscribe").click()
        assert page.get_by_role("heading", level=1).inner_text() == "Complete your sign-up"
        shot("2-provider-signup")
        page.get_by_label("Your name").fill("Grace Hopper")
        page.get_by_label("Work email").fill("grace@example.com")
        page.get_by_label("Company").fill("Compilers Inc")
        with page.expect_navigation(url=f"{backend}/signup/done"):
            page.get_by_role("button", name="Complete sign-up").click()

        listed = api.get(f"/v1/providers/{PROVIDER}/entitlements").json()["entitlements"]
        assert len(listed) == 1
        entitlement_id = listed[0]["name"].rsplit("/", 1)[-1]
        wait_until(
            lambda: entitlement(entitlement_id)["state"] == "ENTITLEMENT_ACTIVE",
            "the entitlement to be approved after sign-up",
        )

        page.goto(f"{emulator}/marketplace/{PROVIDER}")
        row = page.locator(f'tr[data-entitlement="{entitlement_id}"]')
        assert "active" in row.inner_text()
        shot("3-order-active")
        row.get_by_role("combobox", name="New plan").select_option("basic")
        with page.expect_navigation():  # the page reloads once the call is answered
            row.get_by_role("button", name="Change plan").click()
        wait_until(
            lambda: entitlement(entitlement_id)["plan"] == "basic",
            "the plan change to be approved by the backend",
        )
        page.goto(f"{emulator}/marketplace/{PROVIDER}")
        assert "basic" in row.locator(".plan-name").inner_text()
        shot("4-plan-changed")

        with page.expect_navigation(url=f"{backend}/welcome"):
            row.get_by_role("button", name="Manage on provider").click()
        assert page.get_by_role("heading", level=1).inner_text() == "Welcome, Grace Hopper"
        shot("5-manage-on-provider")

    with serve(tmp_path, port, emulator_port):
        again = entitlement(entitlement_id)
        assert (again["state"], again["plan"]) == ("ENTITLEMENT_ACTIVE", "basic")
        synced = subprocess.run(
            [str(BIN / "marketplace-saas"), "sync"],
            cwd=tmp_path,
            env={
                **os.environ,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'marketplace.db'}",
                "MARKETPLACE_EMULATOR_URL": emulator,
                "MARKETPLACE_PROVIDER_ID": PROVIDER,
                "MARKETPLACE_SANDBOX": "1",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        account, kept, hooks = _records(tmp_path, entitlement_id)
        assert (account.deleted_at, account.signup_approval) == (None, "APPROVED")
        assert (kept.state, kept.plan, kept.deleted_at) == ("ENTITLEMENT_ACTIVE", "basic", None)
        assert "account.deleted" not in hooks
        assert "entitlement.deleted" not in hooks

        page.goto(f"{emulator}/marketplace/{PROVIDER}")
        row = page.locator(f'tr[data-entitlement="{entitlement_id}"]')
        assert "active" in row.inner_text()
        before = page.locator("#now").inner_text()
        with page.expect_navigation():
            page.get_by_role("button", name="+1 day").click()
        assert page.locator("#now").inner_text() > before
        with page.expect_navigation():
            row.get_by_role("button", name="Cancel").click()
        wait_until(
            lambda: entitlement(entitlement_id)["state"] == "ENTITLEMENT_CANCELLED",
            "the cancellation",
        )
        page.goto(f"{emulator}/marketplace/{PROVIDER}")
        assert "cancelled" in page.locator(f'tr[data-entitlement="{entitlement_id}"]').inner_text()
        shot("6-after-restart-cancelled")
    assert (tmp_path / "marketplace.sandbox" / "emulator-state.jsonl").exists()
