"""Lookups served by indexes (account, usageReportingId, list order) and the silent bulk seed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace_emulator.errors import InvalidArgument
from marketplace_emulator.procurement.resources import Entitlement
from tests.unit.emulator.procurement_support import DAY, PROVIDER, World, make_world


def _ids(entitlements: list[Entitlement]) -> list[str]:
    return [e.id for e in entitlements]


def _all_pages(world: World, filter_text: str, size: int) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        page, next_token = world.backend.list_entitlements(PROVIDER, filter_text, size, token)
        ids += _ids(page)
        if next_token is None:
            return ids
        token = next_token


def test_account_filters_and_pages_give_what_a_scan_would() -> None:
    world = make_world()
    bought = [world.buy(account_id=f"acct-{i % 3}") for i in range(12)]
    world.clock.advance(60)
    bought.append(world.buy(account_id="acct-1"))
    bought.sort(key=lambda e: (e.create_time, e.id))  # the lists' order
    everything = _ids(world.backend.entitlements(PROVIDER))
    assert everything == _ids(bought)
    assert _all_pages(world, "", 5) == everything
    for account in ("acct-1", f"providers/{PROVIDER}/accounts/acct-1"):
        expected = [e.id for e in bought if e.account_id == "acct-1"]
        assert _all_pages(world, f"account={account}", 2) == expected
        assert _all_pages(world, f'account="{account}" AND state=active', 2) == []
    assert _all_pages(world, "account=providers/OTHER/accounts/acct-1", 2) == []
    assert _all_pages(world, "NOT account=acct-1", 4) == [
        e.id for e in bought if e.account_id != "acct-1"
    ]
    assert _all_pages(world, "account=acct-0 OR account=acct-2", 3) == [
        e.id for e in bought if e.account_id != "acct-1"
    ]


def test_deleting_an_account_removes_it_from_every_index() -> None:
    world = make_world()
    kept = world.buy(account_id="keep")
    gone = world.buy(account_id="gone", usage_reporting_id="project_number:7")
    world.backend.delete_account(PROVIDER, "gone")
    assert world.backend.find_accounts("gone") == []
    assert [a.id for a in world.backend.find_accounts("keep")] == ["keep"]
    assert _ids(world.backend.list_entitlements(PROVIDER, "account=gone")[0]) == []
    assert _ids(world.backend.list_entitlements(PROVIDER)[0]) == [kept.id]
    assert [a.id for a in world.backend.list_accounts(PROVIDER)[0]] == ["keep"]
    assert world.backend.find_by_usage_reporting_id("project_number:7") == []
    found = world.backend.find_by_usage_reporting_id("project_number:7", include_deleted=True)
    assert _ids(found) == [gone.id]
    assert found[0].deleted


def test_usage_reporting_ids_find_live_then_deleted_entitlements() -> None:
    world = make_world()
    shared = "project_number:99"
    first = world.buy(usage_reporting_id=shared)
    second = world.buy(usage_reporting_id=shared)
    third = world.buy(usage_reporting_id=shared)
    world.buy()  # another usage id
    for doomed in (third, first):
        world.backend.cancel(PROVIDER, doomed.id)
        world.backend.delete_entitlement(PROVIDER, doomed.id)
    assert _ids(world.backend.find_by_usage_reporting_id(shared)) == [second.id]
    everything = world.backend.find_by_usage_reporting_id(shared, include_deleted=True)
    assert _ids(everything) == [second.id, third.id, first.id]


def test_an_activated_entitlement_is_found_by_its_new_usage_reporting_id() -> None:
    world = make_world()
    entitlement = world.active()
    found = world.backend.find_by_usage_reporting_id(entitlement.usage_reporting_id)
    assert _ids(found) == [entitlement.id]


def test_seed_creates_entitlements_in_each_state_and_publishes_nothing() -> None:
    world = make_world(activation_delay_seconds=600)
    backend = world.backend
    active = backend.seed(PROVIDER, 50, account_prefix="a-")
    waiting = backend.seed(PROVIDER, 3, state="activation_requested")
    pending = backend.seed(PROVIDER, 2, state="ENTITLEMENT_PENDING_CANCELLATION", plan="pro")
    cancelled = backend.seed(PROVIDER, 2, state="cancelled")
    assert world.events() == []
    assert [s.account_id for s in active[:3]] == ["a-0", "a-1", "a-2"]
    states = {
        "ENTITLEMENT_ACTIVE": active,
        "ENTITLEMENT_ACTIVATION_REQUESTED": waiting,
        "ENTITLEMENT_PENDING_CANCELLATION": pending,
        "ENTITLEMENT_CANCELLED": cancelled,
    }
    for state, seeded in states.items():
        for s in seeded:
            entitlement = backend.get_entitlement(PROVIDER, s.entitlement_id)
            assert (entitlement.state, entitlement.account_id) == (state, s.account_id)
    sample = backend.get_entitlement(PROVIDER, active[0].entitlement_id)
    assert sample.usage_reporting_id
    assert sample.offer_end_time == sample.create_time + timedelta(days=30)
    assert backend.get_account(PROVIDER, "a-0").signup_state == "APPROVED"
    assert backend.get_account(PROVIDER, waiting[0].account_id).signup_state == "PENDING"
    assert len(_all_pages(world, "state=active", 1000)) == 50
    world.advance(30 * DAY)  # seeded entitlements are scheduled like any other
    assert world.events().count("ENTITLEMENT_RENEWED") == 50
    assert world.events().count("ENTITLEMENT_CANCELLED") == 2


def test_seed_refuses_what_it_cannot_make() -> None:
    backend = make_world().backend
    with pytest.raises(InvalidArgument, match="state"):
        backend.seed(PROVIDER, 1, state="suspended")
    with pytest.raises(InvalidArgument, match="product"):
        backend.seed(PROVIDER, 1, product_id="nope")
    with pytest.raises(InvalidArgument, match="plan"):
        backend.seed(PROVIDER, 1, plan="gold")
    with pytest.raises(InvalidArgument, match="count"):
        backend.seed(PROVIDER, -1)
