"""The mass-deletion guard's banner in the operator console, in a real browser.

Google's side forgets every customer; the periodic sync stops and every console page shows the
banner until an operator's `sync --confirm-deletions` runs. Screenshots go to
`test-output/sync-guard/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from marketplace_saas.adapters.db.models import Entitlement
from marketplace_saas.entrypoints import jobs
from marketplace_saas.service.procurement.reconcile import sync_all
from tests.e2e.stack import PASSWORD, Stack, operator_stack, wait_until

pytestmark = pytest.mark.e2e

PROVIDER = "DEMO-sandbox"


@pytest.fixture
def stack(migrated_database_url: str) -> Iterator[Stack]:
    with operator_stack(migrated_database_url, PROVIDER, approval_policy="auto") as running:
        yield running


def _recorded(stack: Stack, ids: list[str]) -> bool:
    with stack.container.sessions() as session:
        return all(session.get(Entitlement, eid) is not None for eid in ids)


def test_the_console_shows_a_stopped_sync_until_an_operator_confirms(
    stack: Stack, page: Any, test_output_dir: Path, request: pytest.FixtureRequest
) -> None:
    shots = test_output_dir / "sync-guard"
    shots.mkdir(parents=True, exist_ok=True)
    suffix = request.node.callspec.id
    procurement = stack.emulator.emulator.procurement
    bought = [procurement.purchase(PROVIDER, "example-product", "basic")[1].id for _ in range(5)]
    wait_until(lambda: _recorded(stack, bought), "the purchases' notifications")

    page.goto(stack.url + "/admin")
    page.get_by_label("Name").fill("olga")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(stack.url + "/admin")
    assert page.locator("[data-sync-blocked]").count() == 0

    procurement.reset()  # Google's side forgets every customer
    stopped = jobs.sync(stack.container)  # what `serve` runs every SYNC_INTERVAL_SECONDS
    assert getattr(stopped, "blocked", "")

    for path in ("/admin", "/admin/entitlements"):
        page.goto(stack.url + path)
        banner = page.locator("[data-sync-blocked]")
        assert banner.is_visible()
        text = banner.inner_text()
        assert "mass-deletion guard" in text
        assert "of 5 entitlements" in text
        assert "marketplace-saas sync --confirm-deletions" in text
    page.screenshot(path=str(shots / f"banner-{suffix}.png"), full_page=True)
    assert page.get_by_text(bought[0]).count() >= 1  # the records are still there

    assert sync_all(stack.container, actor="operator:olga", confirm_deletions=True).ok
    page.goto(stack.url + "/admin")
    assert page.locator("[data-sync-blocked]").count() == 0
    page.screenshot(path=str(shots / f"confirmed-{suffix}.png"), full_page=True)
