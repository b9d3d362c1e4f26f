"""The mass-deletion guard: a sync that would erase many customers waits for an operator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from marketplace_emulator.faults import FaultSettings, ProcurementFaults
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import (
    Account,
    Customer,
    Entitlement,
    HookOutbox,
    PlanHistory,
    SyncBlock,
)
from marketplace_saas.bootstrap import Container
from marketplace_saas.entrypoints import jobs
from marketplace_saas.service.procurement import sync_guard
from marketplace_saas.service.procurement.inbox import Disposition, handle_message
from marketplace_saas.service.procurement.reconcile import sync_all
from tests.integration.backend.cli_support import Cli, cli_fixture
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import Feed, encode

pytestmark = pytest.mark.integration
__all__ = ["cli_fixture"]

PRODUCT = "example-product"


def _customers(emulator: Emulator, container: Container, count: int) -> list[tuple[str, str]]:
    """`count` customers, each with an account and an active entitlement in our records."""
    bought = [emulator.procurement.purchase(PROVIDER, PRODUCT, "basic") for _ in range(count)]
    Feed(emulator, container).deliver()
    return [(account.id, entitlement.id) for account, entitlement in bought]


def _snapshot(container: Container) -> dict[str, list[tuple[Any, ...]]]:
    """Every record a sync could change, as plain tuples."""
    with container.sessions() as session:
        return {
            "entitlements": [
                (r.id, r.state, r.plan, r.service_enabled, r.deleted_at)
                for r in session.scalars(sa.select(Entitlement).order_by(Entitlement.id))
            ],
            "accounts": [
                (r.id, r.state, r.signup_approval, r.deleted_at)
                for r in session.scalars(sa.select(Account).order_by(Account.id))
            ],
            "customers": [
                (r.id, r.name, r.email, r.erased_at)
                for r in session.scalars(sa.select(Customer).order_by(Customer.id))
            ],
            "hooks": [
                (r.hook, r.idempotency_key)
                for r in session.scalars(sa.select(HookOutbox).order_by(HookOutbox.id))
            ],
            "plans": list(session.execute(sa.select(PlanHistory.entitlement_id, PlanHistory.plan))),
        }


def _forget(emulator: Emulator) -> None:
    """Google's side forgets every customer (an incident, or the sandbox's emulator restarted)."""
    emulator.procurement.reset()


def _blocks(container: Container) -> list[SyncBlock]:
    with container.sessions() as session:
        return list(session.scalars(sa.select(SyncBlock).order_by(SyncBlock.id)))


def _metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_sync_that_would_erase_every_customer_stops_and_changes_nothing(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """Every GET answers 404: the sync records the block, logs, counts, and writes nothing else."""
    container = make_container(approval_policy="auto")
    _customers(emulator, container, 6)
    before = _snapshot(container)
    _forget(emulator)
    emulator.procurement.purchase(PROVIDER, PRODUCT, "pro")  # new, but the sync stops first
    blocked_before = _metric("marketplace_syncs_blocked_total") or 0.0

    with capture_logs() as logs:
        result = sync_all(container, actor="sync")

    assert "would mark deleted 6 of 6 accounts (100%) and 6 of 6 entitlements" in result.blocked
    assert "--confirm-deletions" in result.blocked
    assert not result.ok
    assert (result.entitlements_deleted, result.accounts_deleted) == (0, 0)
    assert _snapshot(container) == before
    [block] = _blocks(container)
    assert (block.entitlements_live, block.accounts_live, block.resolved_at) == (6, 6, None)
    assert (block.entitlements_deleting, block.accounts_deleting) == (6, 6)
    warning = [e for e in logs if e["event"] == "sync.blocked"]
    assert warning
    assert warning[0]["log_level"] == "warning"
    assert warning[0]["entitlements_live"] == 6
    assert _metric("marketplace_syncs_blocked_total") == blocked_before + 1
    assert _metric("marketplace_sync_blocked") == 1.0
    banner = sync_guard.banner(container)
    assert banner is not None
    assert banner.actor == "sync"


def test_the_periodic_sync_obeys_the_guard_and_a_second_stop_keeps_one_banner(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """The job `serve` and `listen` run stops too; repeated stops update the one open block."""
    container = make_container(approval_policy="auto")
    _customers(emulator, container, 5)
    before = _snapshot(container)
    _forget(emulator)

    first = jobs.sync(container)
    second = jobs.sync(container)

    assert getattr(first, "blocked", "")
    assert getattr(second, "blocked", "")
    assert _snapshot(container) == before
    assert len(_blocks(container)) == 1


def test_an_operator_confirms_and_the_deletions_happen_and_the_banner_goes(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """`--confirm-deletions`: every vanished record is marked deleted; the block is `confirmed`."""
    container = make_container(approval_policy="auto")
    _customers(emulator, container, 5)
    _forget(emulator)
    assert sync_all(container).blocked

    result = sync_all(container, actor="operator:olga", confirm_deletions=True)

    assert result.ok, result
    assert (result.entitlements_deleted, result.accounts_deleted) == (5, 5)
    [block] = _blocks(container)
    assert (block.resolution, block.resolved_by) == ("confirmed", "operator:olga")
    assert sync_guard.banner(container) is None
    assert _metric("marketplace_sync_blocked") == 0.0


class _OutageAfterTheGuard:
    """The Procurement gateway, and an outage that begins just after the guard's own listing:
    the sync's listings then find nothing and every GET answers 404 (`forgetProviders`)."""

    def __init__(self, gateway: Any, emulator: Emulator) -> None:
        self._gateway = gateway
        self._emulator = emulator
        self.listings = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)

    def list_accounts(self) -> Any:
        self.listings += 1
        if self.listings == 2:  # the guard listed first; the sync's pass lists now
            forget = ProcurementFaults(forget_providers=[PROVIDER])
            self._emulator.faults.configure(FaultSettings(procurement=forget))
        return self._gateway.list_accounts()


def test_an_outage_that_begins_after_the_guard_listed_still_deletes_nothing(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """The deletions are checked against the listing the sync applies, not only the guard's
    first one: Google losing the data between the two stops the sync all the same."""
    container = make_container(approval_policy="auto")
    _customers(emulator, container, 6)
    before = _snapshot(container)
    outage = _OutageAfterTheGuard(container.procurement, emulator)
    container.procurement = outage

    result = sync_all(container, actor="sync")

    assert outage.listings == 2
    assert "would mark deleted 6 of 6 accounts (100%) and 6 of 6 entitlements" in result.blocked
    assert (result.entitlements_deleted, result.accounts_deleted) == (0, 0)
    assert _snapshot(container) == before
    assert len(_blocks(container)) == 1


@pytest.mark.parametrize(
    ("customers", "deleted", "blocked"),
    [(12, 3, False), (40, 4, False), (40, 5, True), (4, 4, True)],
    ids=["3-of-12", "10%-of-40", "12%-of-40", "4-of-4"],
)
def test_deletions_within_the_limits_go_through(
    emulator: Emulator,
    make_container: ContainerFactory,
    customers: int,
    deleted: int,
    blocked: bool,
) -> None:
    """Default limits: blocked only above 10% AND above 3 records of one kind."""
    container = make_container(approval_policy="auto")
    bought = _customers(emulator, container, customers)
    for account_id, _ in bought[:deleted]:
        emulator.procurement.delete_account(PROVIDER, account_id)  # notifications lost

    result = sync_all(container)

    assert bool(result.blocked) is blocked
    expected = 0 if blocked else deleted
    assert (result.entitlements_deleted, result.accounts_deleted) == (expected, expected)


def test_the_limits_are_settings_and_a_sync_within_them_clears_the_banner(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """SYNC_MAX_DELETE_SHARE / SYNC_MAX_DELETE_COUNT move the limit; the block ends `cleared`."""
    strict = make_container(approval_policy="auto", sync_max_delete_count=0)
    bought = _customers(emulator, strict, 3)
    emulator.procurement.delete_account(PROVIDER, bought[0][0])
    assert sync_all(strict).blocked  # 1 of 3 is more than 0 records and more than 10%

    lenient = make_container(approval_policy="auto", sync_max_delete_share=1.0)
    result = sync_all(lenient)

    assert result.ok
    assert result.accounts_deleted == 1
    [block] = _blocks(lenient)
    assert block.resolution == "cleared"


def test_deletion_notifications_are_never_held_by_the_guard(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """ACCOUNT_DELETED and ENTITLEMENT_DELETED for every customer: all applied at once."""
    container = make_container(approval_policy="auto")
    feed = Feed(emulator, container)
    bought = _customers(emulator, container, 5)
    feed.seen = len(emulator.notifications(PROVIDER))
    for account_id, _ in bought:
        emulator.procurement.delete_account(PROVIDER, account_id)

    feed.deliver()

    with container.sessions() as session:
        live = session.scalar(
            sa.select(sa.func.count())
            .select_from(Entitlement)
            .where(Entitlement.deleted_at.is_(None))
        )
        accounts = session.scalar(
            sa.select(sa.func.count()).select_from(Account).where(Account.deleted_at.is_(None))
        )
    assert (live, accounts) == (0, 0)
    assert _blocks(container) == []


def test_cli_sync_exits_2_when_stopped_and_0_once_confirmed(
    emulator: Emulator, container: Container, cli: Cli
) -> None:
    """`marketplace-saas sync`: non-zero with the reason on stderr; `--confirm-deletions` runs."""
    bought = [emulator.procurement.purchase(PROVIDER, PRODUCT, "basic") for _ in range(4)]
    assert cli("sync").code == 0
    _forget(emulator)

    stopped = cli("sync", "--json")
    confirmed = cli("sync", "--confirm-deletions", "--json")

    assert stopped.code == 2, stopped.err
    assert "--confirm-deletions" in stopped.err
    assert stopped.json()["blocked"]
    assert confirmed.code == 0, confirmed.err
    assert confirmed.json()["entitlements_deleted"] == len(bought)


def test_notifications_met_by_404s_in_an_outage_delete_nothing(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """During an incident every read answers 404: account and entitlement notifications that are
    not deletions (here each customer's own, delivered again under new event ids, as after a
    redelivery) leave every record as it was; deletions are the deletion notifications' and the
    guarded sync's to make."""
    container = make_container(approval_policy="auto")
    _customers(emulator, container, 4)
    replay = [
        {**payload, "eventId": f"replayed-{n}"}
        for n, payload in enumerate(emulator.notifications(PROVIDER))
        if payload.get("eventType") not in ("ACCOUNT_DELETED", "ENTITLEMENT_DELETED")
    ]
    assert {p["eventType"] for p in replay} >= {"ACCOUNT_ACTIVE", "ENTITLEMENT_ACTIVE"}
    before = _snapshot(container)
    emulator.faults.configure(
        FaultSettings(procurement=ProcurementFaults(forget_providers=[PROVIDER]))
    )

    for payload in replay:
        handle_message(container, encode(payload))

    assert _snapshot(container) == before


def _outage(emulator: Emulator, *, on: bool = True) -> None:
    """Google's side answers as if it had lost this provider's data (or answers again)."""
    forget = ProcurementFaults(forget_providers=[PROVIDER] if on else [])
    emulator.faults.configure(FaultSettings(procurement=forget))


class _OutageAfterCall:
    """The Procurement gateway; the `at`-th call of `name` goes through, `meanwhile()` runs,
    then the outage begins: before the read that follows a decision, or just after a listing."""

    def __init__(
        self, gateway: Any, emulator: Emulator, name: str, *, at: int = 1, meanwhile: Any = None
    ) -> None:
        self._gateway, self._emulator = gateway, emulator
        self._name, self._at, self._meanwhile = name, at, meanwhile
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._gateway, name)
        if name != self._name:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            answer = real(*args, **kwargs)
            if self.calls == self._at:
                if name.startswith("list_"):
                    answer = list(answer)  # the listing is read whole before the outage
                if self._meanwhile is not None:
                    self._meanwhile()
                _outage(self._emulator)
            return answer

        return call


def test_a_purchase_stored_during_the_sync_listings_is_not_erased_by_an_outage_after_them(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """A customer who buys while the sync lists, stored by the listener before the sync's
    deletions, is not in the listings: a GET made during an incident (404) must not erase it
    (one of many is within the guard's limits). The next sync, the outage over, lists it."""
    container = make_container(approval_policy="auto")
    _customers(emulator, container, 12)
    feed = Feed(emulator, container)
    feed.seen = len(emulator.notifications(PROVIDER))
    newcomer: list[tuple[str, str]] = []

    def purchase_meanwhile() -> None:
        account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
        feed.deliver()
        newcomer.append((account.id, entitlement.id))

    # The guard lists first (call 1); the sync's own listing of entitlements is call 2.
    gateway = _OutageAfterCall(
        container.procurement, emulator, "list_entitlements", at=2, meanwhile=purchase_meanwhile
    )
    container.procurement = gateway

    result = sync_all(container, actor="sync")

    assert gateway.calls == 2
    [(account_id, entitlement_id)] = newcomer
    assert (result.entitlements_deleted, result.accounts_deleted) == (0, 0), result
    with container.sessions() as session:
        account = session.get(Account, account_id)
        entitlement = session.get(Entitlement, entitlement_id)
        assert account is not None
        assert entitlement is not None
        assert (account.deleted_at, entitlement.deleted_at) == (None, None)
        assert entitlement.state == "ENTITLEMENT_ACTIVE"
    assert "account.deleted" not in [hook for hook, _ in _snapshot(container)["hooks"]]

    _outage(emulator, on=False)
    assert sync_all(container, actor="sync").ok


def test_purchases_stored_during_the_listings_do_not_count_against_the_guard_after_them(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """The guard's second count, on the sync's own listings, counts only what the sync could
    delete (what we held before the listings began). Four purchases stored meanwhile, then an
    outage: they are not listed and each GET answers 404, but the sync deletes none of them, so
    they must not stop it as a mass deletion (4 of 7 would)."""
    container = make_container(approval_policy="auto")
    _customers(emulator, container, 3)
    feed = Feed(emulator, container)
    feed.seen = len(emulator.notifications(PROVIDER))

    def purchases_meanwhile() -> None:
        for _ in range(4):
            emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
        feed.deliver()

    gateway = _OutageAfterCall(
        container.procurement, emulator, "list_entitlements", at=2, meanwhile=purchases_meanwhile
    )
    container.procurement = gateway
    before = len(_blocks(container))

    result = sync_all(container, actor="sync")

    assert gateway.calls == 2
    assert not result.blocked, result.blocked
    assert (result.entitlements_deleted, result.accounts_deleted) == (0, 0), result
    assert len(_blocks(container)) == before
    with container.sessions() as session:
        live = session.scalar(
            sa.select(sa.func.count())
            .select_from(Entitlement)
            .where(Entitlement.deleted_at.is_(None))
        )
    assert live == 7


@pytest.mark.parametrize(
    ("decision", "event_type"),
    [
        ("approve_account", "ACCOUNT_ACTIVE"),
        ("approve_entitlement", "ENTITLEMENT_CREATION_REQUESTED"),
    ],
)
def test_a_404_read_after_a_decision_deletes_nothing_and_a_retry_applies(
    emulator: Emulator, make_container: ContainerFactory, decision: str, event_type: str
) -> None:
    """The read that follows an approval answers 404 (an incident began between the two calls):
    the account is not erased, the entitlement not marked deleted; the notification is retried
    and, the outage over, applied."""
    container = make_container(approval_policy="signup")
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    feed = Feed(emulator, container)
    feed.deliver()  # recorded, waiting for the sign-up
    with container.sessions.begin() as session:
        row = session.get(Account, account.id)
        assert row is not None
        row.signed_up_at = datetime.now(UTC)
    if decision == "approve_entitlement":  # the account's approval is already granted
        emulator.procurement.approve_account(PROVIDER, account.id, "signup")
    before = _snapshot(container)
    gateway = _OutageAfterCall(container.procurement, emulator, decision)
    container.procurement = gateway
    # The customer's own notification again (a redelivery): the lifecycle approves now.
    [creation] = [p for p in emulator.notifications(PROVIDER) if p.get("eventType") == event_type]

    first = handle_message(container, encode({**creation, "eventId": "again-1"}))

    assert gateway.calls == 1
    assert first is Disposition.NACK
    assert _snapshot(container) == before
    _outage(emulator, on=False)
    again = handle_message(container, encode({**creation, "eventId": "again-1"}))

    assert again is Disposition.ACK
    with container.sessions() as session:
        stored_account = session.get(Account, account.id)
        stored = session.get(Entitlement, entitlement.id)
    assert stored_account is not None
    assert stored is not None
    assert (stored_account.deleted_at, stored.deleted_at) == (None, None)
    if decision == "approve_account":
        assert stored_account.signup_approval == "APPROVED"
    else:
        assert stored.state == "ENTITLEMENT_ACTIVE"
        assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
            "ENTITLEMENT_ACTIVE"
        )
