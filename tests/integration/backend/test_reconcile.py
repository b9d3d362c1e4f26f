"""`sync_all`: our records repaired to the Procurement API's truth, whatever we missed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from marketplace_emulator.faults import FaultSettings, ProcurementFaults
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Account, Customer, Entitlement
from marketplace_saas.adapters.procurement import ProcurementGateway
from marketplace_saas.adapters.procurement_errors import TransientProcurementError
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.service.procurement.reconcile import sync_all
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import Feed, entitlement_row, hooks

pytestmark = pytest.mark.integration

PRODUCT = "example-product"


def _activate(emulator: Emulator, account_id: str, entitlement_id: str) -> None:
    """The customer's side moves on without us hearing about it (notifications are lost)."""
    emulator.procurement.approve_account(PROVIDER, account_id, "signup")
    emulator.procurement.approve_entitlement(PROVIDER, entitlement_id)


def _records(container: Container) -> dict[str, tuple[object, ...]]:
    with container.sessions() as session:
        rows = session.scalars(sa.select(Entitlement)).all()
    return {
        r.id: (r.state, r.plan, r.new_pending_plan, r.usage_reporting_id, r.deleted_at is None)
        for r in rows
    }


def _truth(emulator: Emulator) -> dict[str, tuple[object, ...]]:
    return {
        e.id: (e.state, e.plan, e.new_pending_plan or None, e.usage_reporting_id or None, True)
        for e in emulator.procurement.entitlements(PROVIDER)
    }


def test_sync_builds_every_record_from_nothing(emulator: Emulator, container: Container) -> None:
    """Every notification lost: one sync gives records equal to the API's, service on or off."""
    active_account, active = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    _activate(emulator, active_account.id, active.id)
    _, changing = emulator.procurement.purchase(
        PROVIDER, PRODUCT, "basic", account_id=active_account.id
    )
    emulator.procurement.approve_entitlement(PROVIDER, changing.id)
    emulator.procurement.change_plan(PROVIDER, changing.id, "pro")
    _, waiting = emulator.procurement.purchase(PROVIDER, PRODUCT, "pro")
    cancelled_account, cancelled = emulator.procurement.purchase(PROVIDER, PRODUCT, "pro")
    _activate(emulator, cancelled_account.id, cancelled.id)
    emulator.procurement.cancel(PROVIDER, cancelled.id, at_term_end=False)

    result = sync_all(container, actor="sync")

    assert result.ok, result.errors
    assert (result.accounts_seen, result.entitlements_seen) == (3, 4)
    # The default policy (auto plan changes) decides the pending plan change a lost message asked.
    assert result.decisions == [f"{changing.id}:approve_plan_change:pro"]
    assert _records(container) == _truth(emulator)
    assert entitlement_row(container, active.id).service_enabled
    assert entitlement_row(container, changing.id).service_plan == "pro"
    assert not entitlement_row(container, waiting.id).service_enabled  # not signed up: waits
    assert not entitlement_row(container, cancelled.id).service_enabled
    with container.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Account)) == 3


def test_sync_takes_the_approvals_a_lost_notification_would_have_taken(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="auto")
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    result = sync_all(container)
    assert result.decisions == [
        f"{account.id}:approve_account",
        f"{entitlement.id}:approve_entitlement",
    ]
    assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
        "ENTITLEMENT_ACTIVE"
    )
    row = entitlement_row(container, entitlement.id)
    assert (row.state, row.service_enabled) == ("ENTITLEMENT_ACTIVE", True)
    assert hooks(container, entitlement.id) == ["entitlement.active"]


def test_a_second_sync_changes_nothing(emulator: Emulator, container: Container) -> None:
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    _activate(emulator, account.id, entitlement.id)
    first = sync_all(container)
    assert first.entitlements_changed == 1
    second = sync_all(container)
    assert (second.entitlements_changed, second.accounts_changed, second.decisions) == (0, 0, [])
    assert hooks(container) == ["entitlement.active"]


def test_vanished_entitlements_and_accounts_are_marked_deleted_and_erased(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """ENTITLEMENT_DELETED and ACCOUNT_DELETED both lost: the sync notices and acts the same."""
    container = make_container(approval_policy="auto")
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    _, kept = emulator.procurement.purchase(PROVIDER, PRODUCT, "pro")
    Feed(emulator, container).deliver()
    with container.sessions.begin() as session:
        session.add(Customer(id="c-1", name="Ada", email="ada@example.com"))
        session.flush()
        row = session.get(Account, account.id)
        assert row is not None
        row.customer_id = "c-1"
    emulator.procurement.delete_account(PROVIDER, account.id)  # nobody tells us

    result = sync_all(container)

    assert (result.entitlements_deleted, result.accounts_deleted) == (1, 1)
    gone = entitlement_row(container, entitlement.id)
    assert (gone.deleted_at is not None, gone.service_enabled) == (True, False)
    assert entitlement_row(container, kept.id).deleted_at is None
    with container.sessions() as session:
        customer = session.get(Customer, "c-1")
        assert customer is not None
        assert (customer.name, customer.email, customer.erased_at is not None) == (
            None,
            None,
            True,
        )
    assert hooks(container, entitlement.id)[-1] == "entitlement.cancelled"
    assert hooks(container, account.id) == ["account.deleted"]


def test_sync_pages_through_long_listings(emulator: Emulator, container: Container) -> None:
    account, _ = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    for _ in range(6):
        emulator.procurement.purchase(PROVIDER, PRODUCT, "basic", account_id=account.id)
    gateway = ProcurementGateway(container.settings, page_size=2, backoff_base=0.01)
    paging = bootstrap(container.settings, procurement=gateway, engine=container.engine)
    try:
        result = sync_all(paging)
    finally:
        gateway.close()
    assert result.entitlements_seen == 7
    assert _records(container) == _truth(emulator)


def test_a_listing_that_fails_stops_the_sync_with_a_transient_error(
    emulator: Emulator, container: Container
) -> None:
    emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    emulator.faults.configure(
        FaultSettings(procurement=ProcurementFaults(error_rate=1.0, statuses=[503]))
    )
    with pytest.raises(TransientProcurementError):
        sync_all(container)
    emulator.faults.clear()
    assert sync_all(container).entitlements_seen == 1


class _DeletedWhileListing:
    """The gateway, and a customer who cancels and deletes the entitlement just after the sync's
    own listing was read (the guard lists first): the listener hears of it and marks it deleted
    before the sync applies its now stale listing."""

    def __init__(self, container: Container, emulator: Emulator, entitlement_id: str) -> None:
        self._gateway = container.procurement
        self._container = container
        self._emulator = emulator
        self._entitlement_id = entitlement_id
        self.listings = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._gateway, name)

    def list_entitlements(self, filter: str | None = None) -> object:
        listing = list(self._gateway.list_entitlements(filter))
        self.listings += 1
        if self.listings == 2:
            self._emulator.procurement.cancel(PROVIDER, self._entitlement_id, at_term_end=False)
            self._emulator.procurement.delete_entitlement(PROVIDER, self._entitlement_id)
            Feed(self._emulator, self._container).deliver()
        return iter(listing)


def test_a_stale_listing_does_not_revive_an_entitlement_deleted_meanwhile(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """Deleted between the sync's listing and its apply: it stays deleted, and the provider's
    app is not told `entitlement.active` again (found by the chaos run)."""
    container = make_container(approval_policy="auto")
    feed = Feed(emulator, container)
    _, bought = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    feed.deliver()
    emulator.procurement.cancel(PROVIDER, bought.id, at_term_end=True)
    feed.deliver()
    container.procurement = _DeletedWhileListing(container, emulator, bought.id)  # type: ignore[assignment]

    sync_all(container)

    assert entitlement_row(container, bought.id).deleted_at is not None
    assert hooks(container, bought.id) == [
        "entitlement.active",
        "entitlement.pending_cancellation",
        "entitlement.cancelled",
    ]


def test_wrong_deletions_and_revivals_each_tell_the_providers_app(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """Twice, an operator confirms deletions during an incident (every read 404) and the
    entitlement is marked deleted; each time Google answers again, the sync revives it with the
    same `updateTime`. The provider's app hears every one of these facts: none has the hook key
    of an earlier one (which the outbox would drop as a repeat)."""
    container = make_container(approval_policy="auto")
    _, bought = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    Feed(emulator, container).deliver()
    outage = FaultSettings(procurement=ProcurementFaults(forget_providers=[PROVIDER]))

    for _ in range(2):
        emulator.faults.configure(outage)
        assert sync_all(container, confirm_deletions=True).entitlements_deleted == 1
        emulator.faults.configure(FaultSettings())
        assert sync_all(container).entitlements_changed == 1

    assert entitlement_row(container, bought.id).deleted_at is None
    assert hooks(container, bought.id) == [
        "entitlement.active",
        "entitlement.cancelled",
        "entitlement.active",
        "entitlement.cancelled",
        "entitlement.active",
    ]
