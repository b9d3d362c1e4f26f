"""What the console's read models share: keyset pages, version tokens, the statuses it lists.

Every list is keyset-paginated: `after` (or `before`) is the last key of the previous page, so
page N costs what page 1 costs. A read asks for `limit + 1` rows; the extra row only says that
another page follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

INBOX_STATUSES = ("received", "processed", "ignored", "invalid", "retrying", "parked")
FAILED_INBOX = ("invalid", "retrying", "parked")
REPORT_STATUSES = ("pending", "sent", "accepted", "rejected", "skipped")
MAX_PAGE = 200
TIMELINE_LIMIT = 300


@dataclass
class Page:
    items: list[dict[str, Any]] = field(default_factory=list)
    next_after: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_after": self.next_after}


def page_limit(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def make_page(items: list[dict[str, Any]], limit: int, key: str) -> Page:
    """The page of `items` (read with `limit + 1`); `next_after` is set when more follow."""
    more = len(items) > limit
    items = items[:limit]
    return Page(items, str(items[-1][key]) if more and items else None)


def version_token(state: str | None, updated_at: datetime) -> str:
    """What a form carries to detect a stale page: the state and when our record last changed.

    The state of an entitlement is its `state`; of an account, its `signup_approval`.
    """
    return f"{state}|{updated_at.isoformat()}"


@dataclass(frozen=True)
class RecordCounts:
    """The raw counts behind the console's overview (each read from one index)."""

    customers: int
    entitlements_by_state: dict[str, int]
    accounts_by_approval: dict[str, int]  # live accounts; None approval counted as "NONE"
    inbox_since: dict[str, int]  # notifications received since the given moment, per status
    reports_since: dict[str, int]  # accepted / rejected windows ending since the given moment
    parked: int
    rejected_reports: int
    dead_hooks: int
