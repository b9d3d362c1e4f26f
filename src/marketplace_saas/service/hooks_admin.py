"""Operator actions on the hook outbox: list, show, retry and discard (`marketplace-saas hooks`).

A pending item held back by an older `dead` item of the same ordering key is reported with
`blocked_by` set; retrying or discarding the dead item releases it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import HookOutbox
from marketplace_saas.domain.hooks import BLOCKING_STATUSES, HookStatus

STATUSES = tuple(status.value for status in HookStatus)


class HookNotFound(LookupError):
    """No outbox item has this id."""


class HookStateError(ValueError):
    """The item is not in a state this action applies to (e.g. retrying a delivered item)."""


@dataclass(frozen=True)
class HookItem:
    id: int
    hook: str
    status: str
    ordering_key: str
    idempotency_key: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    payload: dict[str, Any]
    blocked_by: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hook": self.hook,
            "status": self.status,
            "orderingKey": self.ordering_key,
            "idempotencyKey": self.idempotency_key,
            "attempts": self.attempts,
            # Only a pending item has a next attempt (for the others it is a stale lease end).
            "nextAttemptAt": self.next_attempt_at if self.status == HookStatus.PENDING else None,
            "createdAt": self.created_at,
            "deliveredAt": self.delivered_at,
            "lastError": self.last_error,
            "blockedBy": self.blocked_by,
            "payload": self.payload,
        }


def _item(row: HookOutbox, blocked_by: int | None = None) -> HookItem:
    return HookItem(
        id=row.id,
        hook=row.hook,
        status=row.status,
        ordering_key=row.ordering_key,
        idempotency_key=row.idempotency_key,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        payload=dict(row.payload),
        blocked_by=blocked_by,
    )


def _first_dead_before(session: Session, rows: list[HookOutbox]) -> dict[int, int]:
    """For each pending row: the id of the oldest dead item ahead of it in its ordering key."""
    keys = {row.ordering_key for row in rows if row.status == HookStatus.PENDING.value}
    if not keys:
        return {}
    dead = session.execute(
        sa.select(HookOutbox.ordering_key, sa.func.min(HookOutbox.id))
        .where(HookOutbox.status == HookStatus.DEAD.value, HookOutbox.ordering_key.in_(keys))
        .group_by(HookOutbox.ordering_key)
    ).all()
    first = {key: int(dead_id) for key, dead_id in dead}
    return {
        row.id: first[row.ordering_key]
        for row in rows
        if row.status == HookStatus.PENDING.value
        and row.ordering_key in first
        and first[row.ordering_key] < row.id
    }


def list_items(
    session: Session,
    *,
    status: str | None = None,
    hook: str | None = None,
    ordering_key: str | None = None,
    limit: int = 100,
) -> list[HookItem]:
    """Outbox items, newest first."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    query = sa.select(HookOutbox).order_by(HookOutbox.id.desc()).limit(limit)
    if status is not None:
        query = query.where(HookOutbox.status == status)
    if hook is not None:
        query = query.where(HookOutbox.hook == hook)
    if ordering_key is not None:
        query = query.where(HookOutbox.ordering_key == ordering_key)
    rows = list(session.scalars(query))
    blocked = _first_dead_before(session, rows)
    return [_item(row, blocked.get(row.id)) for row in rows]


def get_item(session: Session, item_id: int) -> HookItem:
    row = session.get(HookOutbox, item_id)
    if row is None:
        raise HookNotFound(f"hook {item_id} not found")
    return _item(row, _first_dead_before(session, [row]).get(row.id))


def counts(session: Session) -> dict[str, int]:
    """Items per status (for health pages and metrics)."""
    rows = session.execute(
        sa.select(HookOutbox.status, sa.func.count()).group_by(HookOutbox.status)
    ).all()
    return {status: int(count) for status, count in rows}


def retry(session: Session, item_id: int, *, now: datetime) -> HookItem:
    """Make a dead (or skipped, or discarded) item pending again, due now, with fresh attempts.

    Commits nothing: the caller owns the transaction.
    """
    row = session.get(HookOutbox, item_id, with_for_update=True)
    if row is None:
        raise HookNotFound(f"hook {item_id} not found")
    if row.status in (HookStatus.PENDING.value, HookStatus.DELIVERED.value):
        raise HookStateError(
            f"hook {item_id} is {row.status}; only dead, skipped or discarded items are retried"
        )
    row.status = HookStatus.PENDING.value
    row.attempts = 0
    row.next_attempt_at = now
    session.flush()
    return _item(row)


def retry_all_dead(session: Session, *, now: datetime) -> list[int]:
    """Every dead item back to pending (in id order, so each key keeps its order)."""
    ids = list(
        session.scalars(
            sa.select(HookOutbox.id)
            .where(HookOutbox.status == HookStatus.DEAD.value)
            .order_by(HookOutbox.id)
        )
    )
    if ids:
        session.execute(
            sa.update(HookOutbox)
            .where(HookOutbox.id.in_(ids), HookOutbox.status == HookStatus.DEAD.value)
            .values(status=HookStatus.PENDING.value, attempts=0, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids


def discard(session: Session, item_id: int, *, reason: str) -> HookItem:
    """Give up on a dead or pending item so that later items of its key proceed."""
    row = session.get(HookOutbox, item_id, with_for_update=True)
    if row is None:
        raise HookNotFound(f"hook {item_id} not found")
    if row.status not in BLOCKING_STATUSES:
        raise HookStateError(f"hook {item_id} is {row.status}; only dead or pending items")
    row.status = HookStatus.DISCARDED.value
    row.last_error = f"discarded: {reason}" + (
        f" (was: {row.last_error})" if row.last_error else ""
    )
    session.flush()
    return _item(row)
