"""The hook outbox in SQL: `SqlHooks` claims due items, records outcomes, and serves operators.

An item is due when it is `pending`, its `next_attempt_at` has passed, and no older item with
the same ordering key is in a blocking state (`domain.hooks.BLOCKING_STATUSES`). Claiming is safe
with several dispatchers: one transaction selects the due items (PostgreSQL adds
`FOR UPDATE SKIP LOCKED`) and claims each with a conditional update that increments `attempts`
and moves `next_attempt_at` to the end of a lease.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from marketplace_saas.adapters.db.models import HookOutbox
from marketplace_saas.domain.hooks import BLOCKING_STATUSES, HookClaim, HookItem, HookStatus


def _blocker_exists() -> sa.Exists:
    older = aliased(HookOutbox)
    return sa.exists().where(
        older.ordering_key == HookOutbox.ordering_key,
        older.id < HookOutbox.id,
        older.status.in_(BLOCKING_STATUSES),
    )


def due_condition(now: datetime) -> sa.ColumnElement[bool]:
    """Pending, due, and first in line for its ordering key."""
    return sa.and_(
        HookOutbox.status == HookStatus.PENDING.value,
        HookOutbox.next_attempt_at <= now,
        ~_blocker_exists(),
    )


def _item(row: HookOutbox) -> HookItem:
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
    )


class SqlHooks:
    """The outbox for the dispatcher and for operators (`service.hooks.ports.HookRepository`)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- the dispatcher ----------------------------------------------------------------------

    def claim_due(self, now: datetime, *, lease_until: datetime, limit: int) -> list[HookClaim]:
        """Claim up to `limit` due items (oldest due first) until `lease_until`."""
        session = self.session
        query = (
            sa.select(HookOutbox.id, HookOutbox.attempts)
            .where(due_condition(now))
            .order_by(HookOutbox.next_attempt_at, HookOutbox.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claims = []
        for item_id, seen in session.execute(query).all():
            claimed: sa.CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
                sa.update(HookOutbox)
                .where(
                    HookOutbox.id == item_id,
                    HookOutbox.attempts == seen,
                    due_condition(now),
                )
                .values(attempts=seen + 1, next_attempt_at=lease_until)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                continue  # another dispatcher won it
            row = session.get_one(HookOutbox, item_id)
            claims.append(
                HookClaim(
                    row.id,
                    row.hook,
                    row.ordering_key,
                    row.idempotency_key,
                    dict(row.payload),
                    seen + 1,
                    row.created_at,
                )
            )
        return claims

    def record(self, item_id: int, attempts: int, values: dict[str, Any]) -> bool:
        """Set `values` on a pending item, only if its `attempts` is still `attempts`."""
        result: sa.CursorResult[tuple[()]] = self.session.execute(  # type: ignore[assignment]
            sa.update(HookOutbox)
            .where(
                HookOutbox.id == item_id,
                HookOutbox.attempts == attempts,
                HookOutbox.status == HookStatus.PENDING.value,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    # -- operators ---------------------------------------------------------------------------

    def items(
        self, *, status: str | None, hook: str | None, ordering_key: str | None, limit: int
    ) -> list[HookItem]:
        """Outbox items, newest first."""
        query = sa.select(HookOutbox).order_by(HookOutbox.id.desc()).limit(limit)
        if status is not None:
            query = query.where(HookOutbox.status == status)
        if hook is not None:
            query = query.where(HookOutbox.hook == hook)
        if ordering_key is not None:
            query = query.where(HookOutbox.ordering_key == ordering_key)
        return [_item(row) for row in self.session.scalars(query)]

    def get(self, item_id: int, *, locked: bool = False) -> HookItem | None:
        row = self.session.get(HookOutbox, item_id, with_for_update=locked or None)
        return _item(row) if row is not None else None

    def first_dead(self, ordering_keys: Iterable[str]) -> dict[str, int]:
        """Per ordering key, the id of its oldest dead item (keys without one are left out)."""
        keys = set(ordering_keys)
        if not keys:
            return {}
        dead = self.session.execute(
            sa.select(HookOutbox.ordering_key, sa.func.min(HookOutbox.id))
            .where(HookOutbox.status == HookStatus.DEAD.value, HookOutbox.ordering_key.in_(keys))
            .group_by(HookOutbox.ordering_key)
        ).all()
        return {key: int(dead_id) for key, dead_id in dead}

    def update(self, item_id: int, values: dict[str, Any]) -> None:
        self.session.execute(
            sa.update(HookOutbox)
            .where(HookOutbox.id == item_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def dead_ids(self) -> list[int]:
        return list(
            self.session.scalars(
                sa.select(HookOutbox.id)
                .where(HookOutbox.status == HookStatus.DEAD.value)
                .order_by(HookOutbox.id)
            )
        )

    def revive_dead(self, ids: list[int], *, now: datetime) -> None:
        """The dead items among `ids` back to pending, due at `now`, with fresh attempts."""
        self.session.execute(
            sa.update(HookOutbox)
            .where(HookOutbox.id.in_(ids), HookOutbox.status == HookStatus.DEAD.value)
            .values(status=HookStatus.PENDING.value, attempts=0, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
