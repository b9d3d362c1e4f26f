"""Plain values read from our records that the rules work on (no database types here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class KnownEntitlement:
    """What we applied of an entitlement and of its account (None: no such row)."""

    update_time: datetime | None
    account_id: str | None
    account_update_time: datetime | None
    account_signed_up: bool | None
