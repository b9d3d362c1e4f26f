"""The whole sign-up in a real browser: purchase, Google's POST, the form, approvals, service on.

The emulator and the backend run over real HTTP; the emulator pushes its notifications to the
backend's `/pubsub/push`, as Pub/Sub would. Screenshots of every page go to
`test-output/signup/`.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from marketplace_emulator.identity.models import X509_PATH
from marketplace_saas.adapters.db.models import Account, Customer, Entitlement, InboxMessage
from tests.e2e.stack import Stack, start_stack, wait_until

pytestmark = pytest.mark.e2e

PROVIDER = "DEMO-sandbox"
AUDIENCE = "saas.example.test"


@pytest.fixture
def stack(migrated_database_url: str) -> Iterator[Stack]:
    """Emulator and backend on real ports; the emulator pushes notifications to the backend."""
    with start_stack(
        migrated_database_url,
        PROVIDER,
        lambda emulator_url: {
            "signup_audience": AUDIENCE,
            "signup_certs_url": emulator_url + X509_PATH,
        },
    ) as running:
        yield running


def marketplace_page(signup_url: str, token: str) -> str:
    """Google's side of the hand-off: a form that POSTs the token to the sign-up URL at once."""
    return f"""<!doctype html><title>Google Cloud Marketplace</title>
<form method="post" action="{html.escape(signup_url)}">
  <input type="hidden" name="x-gcp-marketplace-token" value="{html.escape(token)}">
  <button>Sign up with provider</button>
</form>
<script>document.forms[0].submit()</script>"""


def test_a_buyer_signs_up_in_the_browser_and_the_service_turns_on(
    stack: Stack, page: Any, test_output_dir: Path, request: pytest.FixtureRequest
) -> None:
    shots = test_output_dir / "signup"
    shots.mkdir(parents=True, exist_ok=True)
    suffix = request.node.callspec.id

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{name}-{suffix}.png"), full_page=True)

    emulator = httpx.Client(base_url=stack.emulator.url, timeout=10)
    request.addfinalizer(emulator.close)
    bought = emulator.post(
        f"/emulator/v1/providers/{PROVIDER}/purchases",
        json={"product": "example-product", "plan": "pro"},
    )
    assert bought.status_code == 201, bought.text
    account_id = bought.json()["account"]["name"].rsplit("/", 1)[-1]
    entitlement_id = bought.json()["entitlement"]["name"].rsplit("/", 1)[-1]
    minted = emulator.post(
        "/emulator/v1/signupTokens", json={"account": account_id, "audience": AUDIENCE}
    )
    assert minted.status_code == 200, minted.text

    page.goto(f"{stack.url}/signup")
    assert page.get_by_role("heading", level=1).inner_text() == (
        "Sign-up starts at Google Cloud Marketplace"
    )
    shot("0-no-token")

    page.goto("about:blank")  # Google's page is another document: our pages' CSP does not apply
    with page.expect_navigation(url=f"{stack.url}/signup"):
        page.set_content(marketplace_page(f"{stack.url}/signup", minted.json()["token"]))
    assert page.get_by_role("heading", level=1).inner_text() == "Complete your sign-up"
    purchase = page.locator(f'[data-entitlement="{entitlement_id}"]')
    assert "example-product" in purchase.inner_text()
    assert "pro" in purchase.inner_text()
    shot("1-form")

    page.get_by_label("Work email").fill("not-an-email")
    page.get_by_role("button", name="Complete sign-up").click()
    page.wait_for_load_state()
    assert page.get_by_text("Please enter an email address like name@company.com.").is_visible()
    assert page.get_by_text("Please enter your name.").is_visible()
    shot("2-form-errors")

    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Work email").fill("ada@example.com")
    page.get_by_label("Company").fill("Analytical Engines")
    with page.expect_navigation(url=f"{stack.url}/signup/done"):
        page.get_by_role("button", name="Complete sign-up").click()
    assert page.get_by_role("heading", level=1).inner_text() == "You're all set, Ada Lovelace"
    shot("3-done")

    account = emulator.get(f"/v1/providers/{PROVIDER}/accounts/{account_id}").json()
    assert {a["name"]: a["state"] for a in account["approvals"]}["signup"] == "APPROVED"
    entitlement = emulator.get(f"/v1/providers/{PROVIDER}/entitlements/{entitlement_id}").json()
    assert entitlement["state"] == "ENTITLEMENT_ACTIVE"

    def service_on() -> bool:
        with stack.container.sessions() as session:
            row = session.get(Entitlement, entitlement_id)
            notified = session.scalar(
                sa.select(sa.func.count()).where(
                    InboxMessage.event_type == "ENTITLEMENT_ACTIVE",
                    InboxMessage.subject_id == entitlement_id,
                    InboxMessage.status == "processed",
                )
            )
            return row is not None and row.service_enabled and bool(notified)

    wait_until(service_on, "the ENTITLEMENT_ACTIVE notification to turn the service on")
    with stack.container.sessions() as session:
        row = session.get(Account, account_id)
        assert row is not None
        customer = session.get(Customer, row.customer_id)
        assert customer is not None
        assert (customer.name, customer.email) == ("Ada Lovelace", "ada@example.com")
        service = session.get(Entitlement, entitlement_id)
        assert service is not None
        assert (service.service_enabled, service.service_plan) == (True, "pro")

    page.get_by_role("link", name="Go to your product").click()
    page.wait_for_url(f"{stack.url}/welcome")
    assert page.get_by_role("heading", level=1).inner_text() == "Welcome, Ada Lovelace"
    shot("4-welcome")


def test_a_buyer_with_two_orders_sees_both_and_both_are_approved(
    stack: Stack, page: Any, test_output_dir: Path, request: pytest.FixtureRequest
) -> None:
    """One account, two orders (the second under a private offer with an end date): the form
    lists both, each named by the token's `google.orders`; sign-up approves both."""
    shots = test_output_dir / "signup"
    shots.mkdir(parents=True, exist_ok=True)
    suffix = request.node.callspec.id
    emulator = httpx.Client(base_url=stack.emulator.url, timeout=10)
    request.addfinalizer(emulator.close)
    first = emulator.post(
        f"/emulator/v1/providers/{PROVIDER}/purchases",
        json={"product": "example-product", "plan": "basic"},
    ).json()
    account_id = first["account"]["name"].rsplit("/", 1)[-1]
    second = emulator.post(
        f"/emulator/v1/providers/{PROVIDER}/purchases",
        json={
            "product": "example-product",
            "plan": "pro",
            "account": account_id,
            "offer": {"endTime": "2030-06-30T00:00:00Z"},
        },
    ).json()
    orders = [e["entitlement"]["name"].rsplit("/", 1)[-1] for e in (first, second)]
    token = emulator.post(
        "/emulator/v1/signupTokens", json={"account": account_id, "audience": AUDIENCE}
    ).json()["token"]

    page.goto("about:blank")
    with page.expect_navigation(url=f"{stack.url}/signup"):
        page.set_content(marketplace_page(f"{stack.url}/signup", token))
    assert page.get_by_role("heading", name="Your purchases").is_visible()
    assert page.get_by_text("2 orders on this billing account").is_visible()
    for order in orders:
        assert page.locator(f'[data-entitlement="{order}"][data-in-token="true"]').is_visible()
    private = page.locator(f'[data-entitlement="{orders[1]}"]').inner_text()
    assert "private offer" in private
    assert "offer ends 2030-06-30" in private
    page.screenshot(path=str(shots / f"orders-1-form-{suffix}.png"), full_page=True)

    page.get_by_label("Your name").fill("Grace Hopper")
    page.get_by_label("Work email").fill("grace@example.com")
    page.get_by_label("Company").fill("Compilers Inc")
    with page.expect_navigation(url=f"{stack.url}/signup/done"):
        page.get_by_role("button", name="Complete sign-up").click()
    page.screenshot(path=str(shots / f"orders-2-done-{suffix}.png"), full_page=True)
    for order in orders:
        state = emulator.get(f"/v1/providers/{PROVIDER}/entitlements/{order}").json()["state"]
        assert state == "ENTITLEMENT_ACTIVE", order
