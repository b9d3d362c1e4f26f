"""Operator actions on the hook outbox (`service.hooks.admin`) over an in-memory outbox."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from marketplace_saas.domain.hooks import HookClaim, HookItem
from marketplace_saas.service.hooks import admin

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeHooks:
    """The outbox as operators use it (`HookRepository`); items by id."""

    rows: dict[int, HookItem] = field(default_factory=dict)

    def add(self, item_id: int, key: str, status: str, last_error: str | None = None) -> None:
        self.rows[item_id] = HookItem(
            item_id, "entitlement.active", status, key, f"k{item_id}", 1, T0, T0, None,
            last_error, {},
        )  # fmt: skip

    def claim_due(self, now: datetime, *, lease_until: datetime, limit: int) -> list[HookClaim]:
        raise NotImplementedError  # the dispatcher's, not the operators'

    def record(self, item_id: int, attempts: int, values: dict[str, Any]) -> bool:
        raise NotImplementedError

    def items(
        self, *, status: str | None, hook: str | None, ordering_key: str | None, limit: int
    ) -> list[HookItem]:
        found = [
            r
            for r in self.rows.values()
            if status in (None, r.status) and ordering_key in (None, r.ordering_key)
        ]
        return sorted(found, key=lambda r: -r.id)[:limit]

    def get(self, item_id: int, *, locked: bool = False) -> HookItem | None:
        return self.rows.get(item_id)

    def first_dead(self, ordering_keys: Iterable[str]) -> dict[str, int]:
        keys = set(ordering_keys)
        out: dict[str, int] = {}
        for r in sorted(self.rows.values(), key=lambda r: r.id):
            if r.status == "dead" and r.ordering_key in keys:
                out.setdefault(r.ordering_key, r.id)
        return out

    def update(self, item_id: int, values: dict[str, Any]) -> None:
        self.rows[item_id] = replace(self.rows[item_id], **values)

    def dead_ids(self) -> list[int]:
        return sorted(r.id for r in self.rows.values() if r.status == "dead")

    def revive_dead(self, ids: list[int], *, now: datetime) -> None:
        for item_id in ids:
            self.update(item_id, {"status": "pending", "attempts": 0, "next_attempt_at": now})


@dataclass
class Unit:
    hooks: FakeHooks = field(default_factory=FakeHooks)


def test_a_pending_item_behind_a_dead_one_of_its_key_names_it_as_its_blocker() -> None:
    uow = Unit()
    uow.hooks.add(1, "e1", "dead")
    uow.hooks.add(2, "e1", "pending")
    uow.hooks.add(3, "e2", "pending")

    listed = {i.id: i.blocked_by for i in admin.list_items(uow)}
    assert listed == {1: None, 2: 1, 3: None}
    assert admin.get_item(uow, 2).blocked_by == 1


def test_retry_revives_a_dead_item_and_refuses_a_delivered_one() -> None:
    uow = Unit()
    uow.hooks.add(1, "e1", "dead")
    uow.hooks.add(2, "e1", "delivered")

    revived = admin.retry(uow, 1, now=T0)
    assert (revived.status, revived.attempts) == ("pending", 0)
    assert uow.hooks.rows[1].status == "pending"
    with pytest.raises(admin.HookStateError, match="only dead, skipped or discarded"):
        admin.retry(uow, 2, now=T0)
    with pytest.raises(admin.HookNotFound):
        admin.retry(uow, 9, now=T0)


def test_discard_keeps_the_last_error_and_releases_the_key() -> None:
    uow = Unit()
    uow.hooks.add(1, "e1", "dead", last_error="HTTP 500")
    uow.hooks.add(2, "e1", "pending")

    discarded = admin.discard(uow, 1, reason="done by hand")
    assert discarded.last_error == "discarded: done by hand (was: HTTP 500)"
    assert admin.get_item(uow, 2).blocked_by is None
    with pytest.raises(admin.HookStateError, match="only dead or pending"):
        admin.discard(uow, 1, reason="again")


def test_retry_all_dead_revives_every_dead_item_in_order() -> None:
    uow = Unit()
    for item_id, status in ((1, "dead"), (2, "delivered"), (3, "dead")):
        uow.hooks.add(item_id, f"e{item_id}", status)

    assert admin.retry_all_dead(uow, now=T0) == [1, 3]
    assert [r.status for r in uow.hooks.rows.values()] == ["pending", "delivered", "pending"]


def test_an_unknown_status_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="one of pending, delivered"):
        admin.list_items(Unit(), status="lost")
