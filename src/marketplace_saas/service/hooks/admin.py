"""Operator actions on the hook outbox: list, show, retry and discard (`marketplace-saas hooks`).

A pending item held back by an older `dead` item of the same ordering key is reported with
`blocked_by` set; retrying or discarding the dead item releases it. Each action runs in the
caller's unit of work (`uow.hooks`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Protocol

from marketplace_saas.domain.hooks import BLOCKING_STATUSES, STATUSES, HookItem, HookStatus
from marketplace_saas.service.hooks.ports import HookRepository

__all__ = ["STATUSES", "HookItem", "HookNotFound", "HookStateError"]


class HookNotFound(LookupError):
    """No outbox item has this id."""


class HookStateError(ValueError):
    """The item is not in a state this action applies to (e.g. retrying a delivered item)."""


class HookUnit(Protocol):
    @property
    def hooks(self) -> HookRepository: ...


def _blocked(hooks: HookRepository, items: list[HookItem]) -> list[HookItem]:
    """Each pending item with the id of the oldest dead item ahead of it in its ordering key."""
    pending = [i for i in items if i.status == HookStatus.PENDING.value]
    first = hooks.first_dead({i.ordering_key for i in pending})
    if not first:
        return items
    return [
        replace(i, blocked_by=first[i.ordering_key])
        if i.status == HookStatus.PENDING.value
        and i.ordering_key in first
        and first[i.ordering_key] < i.id
        else i
        for i in items
    ]


def list_items(
    uow: HookUnit,
    *,
    status: str | None = None,
    hook: str | None = None,
    ordering_key: str | None = None,
    limit: int = 100,
) -> list[HookItem]:
    """Outbox items, newest first."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    items = uow.hooks.items(status=status, hook=hook, ordering_key=ordering_key, limit=limit)
    return _blocked(uow.hooks, items)


def get_item(uow: HookUnit, item_id: int) -> HookItem:
    item = uow.hooks.get(item_id)
    if item is None:
        raise HookNotFound(f"hook {item_id} not found")
    return _blocked(uow.hooks, [item])[0]


def retry(uow: HookUnit, item_id: int, *, now: datetime) -> HookItem:
    """Make a dead (or skipped, or discarded) item pending again, due now, with fresh attempts."""
    item = uow.hooks.get(item_id, locked=True)
    if item is None:
        raise HookNotFound(f"hook {item_id} not found")
    if item.status in (HookStatus.PENDING.value, HookStatus.DELIVERED.value):
        raise HookStateError(
            f"hook {item_id} is {item.status}; only dead, skipped or discarded items are retried"
        )
    uow.hooks.update(
        item_id, {"status": HookStatus.PENDING.value, "attempts": 0, "next_attempt_at": now}
    )
    return replace(item, status=HookStatus.PENDING.value, attempts=0, next_attempt_at=now)


def retry_all_dead(uow: HookUnit, *, now: datetime) -> list[int]:
    """Every dead item back to pending (in id order, so each key keeps its order)."""
    ids = uow.hooks.dead_ids()
    if ids:
        uow.hooks.revive_dead(ids, now=now)
    return ids


def discard(uow: HookUnit, item_id: int, *, reason: str) -> HookItem:
    """Give up on a dead or pending item so that later items of its key proceed."""
    item = uow.hooks.get(item_id, locked=True)
    if item is None:
        raise HookNotFound(f"hook {item_id} not found")
    if item.status not in BLOCKING_STATUSES:
        raise HookStateError(f"hook {item_id} is {item.status}; only dead or pending items")
    error = f"discarded: {reason}" + (f" (was: {item.last_error})" if item.last_error else "")
    uow.hooks.update(item_id, {"status": HookStatus.DISCARDED.value, "last_error": error})
    return replace(item, status=HookStatus.DISCARDED.value, last_error=error)
