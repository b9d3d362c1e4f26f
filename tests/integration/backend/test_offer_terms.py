"""Private-offer terms as the emulator serves them: stored, shown, and driving hooks.

The backend reads the emulator through Google's discovery client over HTTP (the container's
ProcurementGateway); the terms come from the stored resource (`domain.offers.OfferTerms`) and
show in `entitlements show`, the console and hook payloads.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_emulator.catalog import OfferSpec, PlanSpec, Product
from marketplace_emulator.procurement.offers import OfferTerms as EmulatorOffer
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import HookOutbox
from marketplace_saas.bootstrap import Container
from tests.integration.backend.admin_support import OPERATOR, admin_container, console
from tests.integration.backend.cli_support import Cli, cli_fixture
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import Feed, entitlement_row, hooks

pytestmark = pytest.mark.integration
__all__ = ["cli_fixture"]

DAY = 86_400


@pytest.fixture
def container(make_container: ContainerFactory) -> Container:
    """Approves as the codelab does, with the console's operators (so pages can be read)."""
    return admin_container(make_container, approval_policy="auto")


def _flat_product(emulator: Emulator, **offers: OfferSpec) -> str:
    emulator.catalog.put(
        PROVIDER,
        "flat-product",
        Product(
            service_name="flat.endpoints.sandbox.cloud.goog",
            plan_change="termEnd",
            plans={"basic": PlanSpec(), "pro": PlanSpec()},
            offers=offers,
        ),
    )
    return "flat-product"


def _hook_payloads(container: Container, entitlement_id: str, hook: str) -> list[dict[str, Any]]:
    with container.sessions() as session:
        rows = session.scalars(
            sa.select(HookOutbox)
            .where(HookOutbox.ordering_key == entitlement_id, HookOutbox.hook == hook)
            .order_by(HookOutbox.id)
        )
        return [row.payload for row in rows]


def _terms(payload: dict[str, Any]) -> dict[str, Any]:
    terms = payload["entitlement"]["offer_terms"]
    assert isinstance(terms, dict)
    return terms


def test_an_auto_renewing_private_offer_renews_and_the_hook_carries_the_new_end(
    emulator: Emulator, container: Container, cli: Cli
) -> None:
    """A private P1M offer: terms shown as private, P1M, renewing; at its end it renews and
    `entitlement.renewed` carries the next term's end; `entitlements show` shows the terms."""
    _, entitlement = emulator.procurement.purchase(
        PROVIDER, "example-product", "basic", offer=EmulatorOffer(duration="P1M")
    )
    feed = Feed(emulator, container)
    feed.deliver()
    first_end = entitlement_row(container, entitlement.id).offer_end_time
    assert first_end is not None
    active = _hook_payloads(container, entitlement.id, "entitlement.active")[0]
    terms = _terms(active)
    assert (terms["private"], terms["duration"], terms["renews"]) == (True, "P1M", True)

    emulator.advance_clock(32 * DAY)
    feed.deliver()
    assert hooks(container, entitlement.id)[-1] == "entitlement.renewed"
    renewed = _hook_payloads(container, entitlement.id, "entitlement.renewed")[-1]
    new_end = _terms(renewed)["end_time"]
    assert new_end is not None
    assert new_end > first_end.strftime("%Y-%m-%dT%H:%M:%S")

    shown = cli("entitlements", "show", entitlement.id, "--json")
    assert shown.code == 0, shown.err
    assert shown.json()["offerTerms"]["duration"] == "P1M"
    assert shown.json()["offerTerms"]["end_time"] == new_end
    text = cli("entitlements", "show", entitlement.id)
    assert "Offer terms" in text.out
    assert "renews at the term's end" in text.out


def test_a_non_renewing_private_offer_on_a_flat_plan_ends_with_both_hooks(
    emulator: Emulator, container: Container
) -> None:
    """At the end of a private offer that does not renew the entitlement is cancelled
    (`expired`): `entitlement.offer_ended` and `entitlement.cancelled` are raised."""
    product = _flat_product(
        emulator, once=OfferSpec(kind="private", duration="P1M", autoRenew=False)
    )
    _, entitlement = emulator.procurement.purchase(PROVIDER, product, "basic", offer_id="once")
    feed = Feed(emulator, container)
    feed.deliver()
    emulator.advance_clock(32 * DAY)
    feed.deliver()
    raised = hooks(container, entitlement.id)
    assert "entitlement.offer_ended" in raised
    assert raised[-1] == "entitlement.cancelled"
    cancelled = _hook_payloads(container, entitlement.id, "entitlement.cancelled")[-1]
    assert cancelled["reason"] == "expired"
    assert _terms(cancelled)["renews"] is False


def test_an_end_dated_private_offer_reaching_its_end_raises_offer_ended(
    emulator: Emulator, container: Container
) -> None:
    """A usage-based plan under an end-dated private offer carries on under the standard offer
    at its end date: `entitlement.offer_ended`, the terms now standard."""
    end = emulator.clock.now() + timedelta(days=10)
    _, entitlement = emulator.procurement.purchase(
        PROVIDER, "example-product", "basic", offer=EmulatorOffer(end_time=end)
    )
    feed = Feed(emulator, container)
    feed.deliver()
    before = _terms(_hook_payloads(container, entitlement.id, "entitlement.active")[0])
    assert (before["private"], before["duration"], before["renews"]) == (True, None, False)
    assert before["end_time"] is not None
    emulator.advance_clock(11 * DAY)
    feed.deliver()
    assert hooks(container, entitlement.id)[-1] == "entitlement.offer_ended"
    ended = _terms(_hook_payloads(container, entitlement.id, "entitlement.offer_ended")[-1])
    assert ended["private"] is False
    assert entitlement_row(container, entitlement.id).service_enabled


def test_a_pending_plan_change_shows_the_new_offers_terms_in_the_console(
    emulator: Emulator, container: Container
) -> None:
    """A plan change at term end to a private P2Y offer: the console's entitlement page shows
    the pending offer and its duration, and the account page lists each order."""
    product = _flat_product(
        emulator, two_years=OfferSpec(kind="private", plan="pro", duration="P2Y")
    )
    account, entitlement = emulator.procurement.purchase(PROVIDER, product, "basic")
    _, second = emulator.procurement.purchase(PROVIDER, product, "pro", account_id=account.id)
    feed = Feed(emulator, container)
    feed.deliver()
    emulator.procurement.change_plan(PROVIDER, entitlement.id, "pro", offer_id="two_years")
    feed.deliver()
    row = entitlement_row(container, entitlement.id)
    assert row.state == "ENTITLEMENT_PENDING_PLAN_CHANGE"
    with console(container, OPERATOR) as http:
        page = http.get(f"/admin/entitlements/{entitlement.id}").text
        account_page = http.get(f"/admin/accounts/{account.id}").text
    assert "Pending offer" in page
    assert "/privateOffers/two_years" in page
    assert "P2Y" in page
    assert "renews at the term&#39;s end" in page or "renews at the term's end" in page
    assert entitlement.id in account_page
    assert second.id in account_page
    assert "2 orders" in account_page


def test_a_migrated_order_is_shown_as_migrated(emulator: Emulator, container: Container) -> None:
    """A migration to another product: the old order is cancelled `migrated`, its hook's terms
    say so, and `entitlements show` too."""
    product = _flat_product(emulator)
    _, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    feed = Feed(emulator, container)
    feed.deliver()
    emulator.procurement.migrate(PROVIDER, entitlement.id, product, "basic")
    feed.deliver()
    cancelled = _hook_payloads(container, entitlement.id, "entitlement.cancelled")[-1]
    assert cancelled["reason"] == "migrated"
    assert _terms(cancelled)["migrated"] is True
