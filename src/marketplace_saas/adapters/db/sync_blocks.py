"""The `sync_blocks` table: syncs the mass-deletion guard stopped, open until a sync resolves them.

At most one row is open (`resolved_at` NULL) at a time: a guard that stops again updates it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import SyncBlock


def open_block(session: Session) -> SyncBlock | None:
    """The open block (the console's banner), if any."""
    statement = (
        sa.select(SyncBlock)
        .where(SyncBlock.resolved_at.is_(None))
        .order_by(SyncBlock.id.desc())
        .limit(1)
    )
    return session.scalars(statement).first()


def record_block(session: Session, *, at: datetime, actor: str, **fields: Any) -> SyncBlock:
    """Open a block, or bring the open one up to date (the guard stopped another sync)."""
    block = open_block(session)
    if block is None:
        block = SyncBlock(actor=actor, blocked_at=at, **fields)
        session.add(block)
    else:
        block.actor, block.blocked_at = actor, at
        for name, value in fields.items():
            setattr(block, name, value)
    session.flush()
    return block


def resolve_blocks(session: Session, *, at: datetime, by: str, resolution: str) -> int:
    """Close every open block (`confirmed` by an operator, or `cleared`); how many were open."""
    statement = (
        sa.update(SyncBlock)
        .where(SyncBlock.resolved_at.is_(None))
        .values(resolved_at=at, resolved_by=by, resolution=resolution)
    )
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
