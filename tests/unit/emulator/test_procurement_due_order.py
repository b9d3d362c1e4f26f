"""Clock-driven transitions come from a heap of due times: pin their order and stale entries.

The last test replays random scenarios against a backend that finds due transitions the old way
(a scan of every entitlement, earliest first, ties in insertion order) and requires the same
notifications in the same order.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from marketplace_emulator.catalog import Catalog
from marketplace_emulator.clock import Clock
from marketplace_emulator.errors import ApiError
from marketplace_emulator.events import RecordingSink
from marketplace_emulator.procurement.customer import OfferTerms
from marketplace_emulator.procurement.models import ProcurementBackend
from tests.unit.emulator.procurement_support import DAY, PROVIDER, START, World, make_world

MINUTE = 60.0


def _approve(world: World, entitlement_id: str, account_id: str) -> None:
    world.backend.approve_account(PROVIDER, account_id)
    world.backend.approve_entitlement(PROVIDER, entitlement_id)


def _activations(world: World) -> list[tuple[str, str]]:
    return [
        (p["entitlement"]["id"], p["entitlement"]["updateTime"])
        for p in world.payloads()
        if p["eventType"] == "ENTITLEMENT_ACTIVE"
    ]


def test_interleaved_offer_starts_activate_in_time_order_in_one_advance() -> None:
    world = make_world()
    starts: dict[str, datetime] = {}
    for i in range(60):
        start = START + timedelta(minutes=(i * 37) % 60 + 1)  # a permutation of 1..60 minutes
        _, entitlement = world.backend.purchase(
            PROVIDER, "example-product", "basic", offer=OfferTerms(start_time=start)
        )
        _approve(world, entitlement.id, entitlement.account_id)
        starts[entitlement.id] = start
    world.sink.clear()
    assert world.backend.next_transition_time() == START + timedelta(minutes=1)
    world.advance(2 * 60 * MINUTE)
    fired = _activations(world)
    assert [eid for eid, _ in fired] == sorted(starts, key=starts.__getitem__)
    assert all(stamp == starts[eid].strftime("%Y-%m-%dT%H:%M:%SZ") for eid, stamp in fired)


def test_equal_due_times_fire_in_creation_order_not_id_order() -> None:
    world = make_world()
    created = [world.active().id for _ in range(40)]  # all activated at START: same term end
    assert sorted(created) != created  # uuid4 ids: the order below is not the ids' order
    world.advance(30 * DAY)
    renewed = [p["entitlement"]["id"] for p in world.payloads()]
    assert world.events() == ["ENTITLEMENT_RENEWED"] * 40
    assert renewed == created


def test_a_clock_advance_over_several_terms_interleaves_entitlements_by_time() -> None:
    world = make_world()
    first = world.active()
    world.clock.advance(10 * DAY)
    second = world.active()
    world.advance(65 * DAY)  # first: day 30, 60; second: day 40, 70
    renewed = [(p["entitlement"]["id"], p["entitlement"]["updateTime"]) for p in world.payloads()]
    assert renewed == [
        (first.id, "2030-01-31T00:00:00Z"),
        (second.id, "2030-02-10T00:00:00Z"),
        (first.id, "2030-03-02T00:00:00Z"),
        (second.id, "2030-03-12T00:00:00Z"),
    ]


def test_stale_due_entries_do_nothing() -> None:
    world = make_world()
    world.product("later", cancellation="termEnd", planChange="termEnd")
    cancelled = world.active()
    renewed_early = world.active()
    reverted = world.active("basic", "later")
    plan_dropped = world.active("basic", "later")
    deleted = world.active()
    backend = world.backend
    world.clock.advance(10 * DAY)
    backend.cancel(PROVIDER, cancelled.id, at_term_end=False)
    backend.renew(PROVIDER, renewed_early.id)  # new term end: day 40
    backend.cancel(PROVIDER, reverted.id)  # at term end (day 30) ...
    backend.revert_cancellation(PROVIDER, reverted.id)  # ... taken back
    backend.change_plan(PROVIDER, plan_dropped.id, "pro")
    backend.approve_plan_change(PROVIDER, plan_dropped.id, "pro")  # at term end (day 30) ...
    backend.cancel_plan_change(PROVIDER, plan_dropped.id)  # ... withdrawn
    backend.cancel(PROVIDER, deleted.id, at_term_end=False)
    backend.delete_entitlement(PROVIDER, deleted.id)
    world.sink.clear()
    world.advance(25 * DAY)  # day 35
    assert [(p["eventType"], p["entitlement"]["id"]) for p in world.payloads()] == [
        ("ENTITLEMENT_RENEWED", reverted.id),
        ("ENTITLEMENT_RENEWED", plan_dropped.id),
    ]
    assert world.get(plan_dropped).plan == "basic"
    assert world.get(cancelled).state == "ENTITLEMENT_CANCELLED"
    assert backend.next_transition_time() == START + timedelta(days=40)
    world.sink.clear()
    world.advance(5 * DAY)
    assert [p["entitlement"]["id"] for p in world.payloads()] == [renewed_early.id]


def test_nothing_scheduled_once_everything_is_cancelled() -> None:
    world = make_world()
    entitlement = world.active()
    assert world.backend.next_transition_time() == START + timedelta(days=30)
    world.backend.cancel(PROVIDER, entitlement.id, at_term_end=False)
    assert world.backend.next_transition_time() is None
    world.advance(400 * DAY)
    assert world.events() == ["ENTITLEMENT_CANCELLED"]


class ScanningBackend(ProcurementBackend):
    """The old way: scan every entitlement for the earliest due one, ties in insertion order."""

    def _process_due(self, now: datetime) -> None:
        while True:
            due: tuple[datetime, Any] | None = None
            for entitlement in self._entitlements.values():
                when = self._due_time(entitlement)
                if when is not None and when <= now and (due is None or when < due[0]):
                    due = (when, entitlement)
            if due is None:
                return
            self._fire(due[1], due[0])


def _scenario(backend_type: type[ProcurementBackend], seed: int) -> list[tuple[Any, ...]]:
    clock = Clock(now=lambda: START)
    sink = RecordingSink()
    catalog = Catalog()
    backend = backend_type(clock, catalog, sink, activation_delay_seconds=3600)
    world = World(backend, clock, sink, catalog)
    world.product("later", cancellation="termEnd", planChange="termEnd", termDays=7)
    world.product("auto", autoApprove=True, termDays=3)
    rng = random.Random(seed)
    ids: list[str] = []
    for _ in range(300):
        roll = rng.random()
        try:
            if roll < 0.25 or not ids:
                product = rng.choice(["example-product", "later", "auto"])
                offer = None
                if rng.random() < 0.3:
                    start = clock.now() + timedelta(hours=rng.randrange(0, 72))
                    end = start + timedelta(days=rng.randrange(1, 10))
                    offer = OfferTerms(start_time=start, end_time=end)
                _, e = backend.purchase(PROVIDER, product, "basic", offer=offer)
                ids.append(e.id)
                continue
            eid = rng.choice(ids)
            e = backend.get_entitlement(PROVIDER, eid)
            action = rng.randrange(9)
            if action == 0:
                _approve(world, eid, e.account_id)
            elif action == 1:
                backend.change_plan(PROVIDER, eid, "pro" if e.plan == "basic" else "basic")
                if rng.random() < 0.7:
                    backend.approve_plan_change(
                        PROVIDER, eid, backend.get_entitlement(PROVIDER, eid).new_pending_plan
                    )
            elif action == 2:
                backend.cancel(PROVIDER, eid, at_term_end=rng.random() < 0.7)
            elif action == 3:
                backend.revert_cancellation(PROVIDER, eid)
            elif action == 4:
                backend.renew(PROVIDER, eid)
            elif action == 5:
                backend.end_offer(PROVIDER, eid, cancel=rng.random() < 0.3)
            elif action == 6:
                backend.delete_entitlement(PROVIDER, eid)
            elif action == 7:
                backend.cancel_plan_change(PROVIDER, eid)
            else:
                world.advance(rng.choice([60, 3600, DAY, 3 * DAY, 8 * DAY]))
        except ApiError:
            pass
    world.advance(40 * DAY)
    index = {eid: i for i, eid in enumerate(ids)}
    out: list[tuple[Any, ...]] = []
    for payload in world.payloads():
        body = dict(payload.get("entitlement") or payload.get("account") or {})
        ref = index.get(body.pop("id", ""), "account")
        body.pop("newPendingOfferDuration", None)
        out.append((payload["eventType"], ref, tuple(sorted(body.items()))))
    return out


def test_same_notifications_in_the_same_order_as_a_scan_of_every_entitlement() -> None:
    for seed in range(12):
        events = _scenario(ProcurementBackend, seed)
        assert len(events) > 100
        assert events == _scenario(ScanningBackend, seed), f"seed {seed}"
