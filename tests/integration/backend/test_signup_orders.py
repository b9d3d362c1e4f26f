"""Sign-up of an account holding several orders (the token's `google.orders`).

The token is minted by the emulator (`POST /emulator/v1/signupTokens`), which derives
`google.orders` from the account's entitlements; the backend reads the account and its orders
through Google's discovery client over HTTP.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from marketplace_emulator.procurement.offers import OfferTerms as EmulatorOffer
from marketplace_emulator.server import Emulator
from marketplace_saas.bootstrap import Container
from tests.integration.backend.conftest import PROVIDER
from tests.integration.backend.lifecycle_support import Feed, entitlement_row
from tests.integration.backend.signup_support import (
    AUDIENCE,
    FORM,
    client,
    csrf_of,
    emulator_token,
    signup_app,
)

pytestmark = pytest.mark.integration
__all__ = ["signup_app"]


def minted_token(emulator_url: str, account_id: str) -> str:
    """The token the emulator mints for the account: `google.orders` derived from its orders."""
    answer = httpx.post(
        emulator_url.rstrip("/") + "/emulator/v1/signupTokens",
        json={"account": account_id, "audience": AUDIENCE},
    )
    answer.raise_for_status()
    token = answer.json()["token"]
    assert isinstance(token, str)
    return token


def test_signup_lists_each_order_and_approves_each(
    emulator: Emulator, emulator_url: str, signup_app: Container
) -> None:
    """Two orders of one account (one under a private offer with an end date): the page lists
    both as named by the token, with the private offer's end; sign-up approves both."""
    end = emulator.clock.now() + timedelta(days=90)
    account, first = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    _, second = emulator.procurement.purchase(
        PROVIDER,
        "example-product",
        "pro",
        account_id=account.id,
        offer=EmulatorOffer(end_time=end),
    )
    http = client(signup_app)
    page = http.post(
        "/signup", data={"x-gcp-marketplace-token": minted_token(emulator_url, account.id)}
    )
    assert page.status_code == 200, page.text
    html = page.text
    assert "2 orders on this billing account" in html
    for order in (first.id, second.id):
        assert f'data-entitlement="{order}" data-in-token="true"' in html
    assert "private offer" in html
    assert f"offer ends {end.date().isoformat()}" in html

    done = http.post("/signup/complete", data={**FORM, "csrf_token": csrf_of(html)})
    assert done.status_code == 303
    Feed(emulator, signup_app).deliver()
    for order in (first.id, second.id):
        assert emulator.procurement.get_entitlement(PROVIDER, order).state == "ENTITLEMENT_ACTIVE"
        assert entitlement_row(signup_app, order).service_enabled
    shown = http.get("/signup/done").text
    assert first.id in shown
    assert second.id in shown


def test_an_order_the_token_names_but_the_account_lacks_is_shown_as_such(
    emulator: Emulator, signup_app: Container
) -> None:
    """A token naming an order the account does not hold: listed as "Not on this account",
    beside the account's real order; nothing is approved for it."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    token = emulator_token(
        account.id, google={"user_identity": "u-1", "orders": [entitlement.id, "order-gone"]}
    )
    page = client(signup_app).post("/signup", data={"x-gcp-marketplace-token": token})
    assert page.status_code == 200
    assert 'data-entitlement="order-gone" data-in-token="true"' in page.text
    assert "Not on this account" in page.text
    assert f'data-entitlement="{entitlement.id}" data-in-token="true"' in page.text
