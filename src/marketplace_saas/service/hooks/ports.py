"""What the hook use cases speak to: the outbox (`uow.hooks`; SQL: adapters/db/hook_outbox.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from marketplace_saas.domain.hooks import HookClaim, HookItem


class HookRepository(Protocol):
    # -- the dispatcher ----------------------------------------------------------------------
    def claim_due(self, now: datetime, *, lease_until: datetime, limit: int) -> list[HookClaim]:
        """Claim up to `limit` due items (pending, due, first in line for their ordering key),
        oldest due first: each one's `attempts` goes up by one and its lease ends at
        `lease_until`. An item another dispatcher claimed meanwhile is left out."""

    def record(self, item_id: int, attempts: int, values: dict[str, Any]) -> bool:
        """Set `values` on a pending item, only if its `attempts` is still `attempts` (the
        claim is still the current one); whether it was set."""

    # -- operators ---------------------------------------------------------------------------
    def items(
        self, *, status: str | None, hook: str | None, ordering_key: str | None, limit: int
    ) -> list[HookItem]:
        """Outbox items, newest first."""

    def get(self, item_id: int, *, locked: bool = False) -> HookItem | None: ...

    def first_dead(self, ordering_keys: Iterable[str]) -> dict[str, int]:
        """Per ordering key, the id of its oldest dead item (keys without one are left out)."""

    def update(self, item_id: int, values: dict[str, Any]) -> None: ...

    def dead_ids(self) -> list[int]:
        """Every dead item, oldest first."""

    def revive_dead(self, ids: list[int], *, now: datetime) -> None:
        """The dead items among `ids` back to pending, due at `now`, with fresh attempts."""
