"""The `sync_blocks` table: syncs the mass-deletion guard stopped, open until a sync resolves them.

At most one row is open (`resolved_at` NULL) at a time: a guard that stops again updates it.
`SqlSyncBlocks` is the repository a unit of work carries (`uow.sync_blocks`); the protocol it
satisfies is `service.ports.SyncBlockRepository`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import SyncBlock

_OPEN = (
    sa.select(SyncBlock)
    .where(SyncBlock.resolved_at.is_(None))
    .order_by(SyncBlock.id.desc())
    .limit(1)
)


class SqlSyncBlocks:
    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    def open_block(self) -> SyncBlock | None:
        """The open block (the console's banner), if any."""
        return self.session.scalars(_OPEN).first()

    def record_block(
        self,
        *,
        at: datetime,
        actor: str,
        accounts_live: int,
        accounts_deleting: int,
        entitlements_live: int,
        entitlements_deleting: int,
        sample: dict[str, Any],
    ) -> None:
        """Open a block, or bring the open one up to date (the guard stopped another sync)."""
        block = self.open_block()
        if block is None:
            block = SyncBlock()
            self.session.add(block)
        block.blocked_at, block.actor = at, actor
        block.accounts_live, block.accounts_deleting = accounts_live, accounts_deleting
        block.entitlements_live = entitlements_live
        block.entitlements_deleting = entitlements_deleting
        block.sample = sample
        self.session.flush()

    def resolve_blocks(self, *, at: datetime, by: str, resolution: str) -> int:
        """Close every open block (`confirmed` by an operator, or `cleared`); how many were open."""
        statement = (
            sa.update(SyncBlock)
            .where(SyncBlock.resolved_at.is_(None))
            .values(resolved_at=at, resolved_by=by, resolution=resolution)
        )
        return int(getattr(self.session.execute(statement), "rowcount", 0) or 0)
