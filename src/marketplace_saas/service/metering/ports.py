"""What metering's use cases speak to: the usage store (`uow.usage`), the app and its report claims.

`adapters/db/usage_ledger.py` is the SQL (`SqlUsage`; the claims: `replica_locks.report_claims`);
the unit tests' in-memory store is `tests/unit/backend/metering_fakes.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from marketplace_saas.config import Settings
from marketplace_saas.domain.metering import (
    LedgerState,
    MeteredEntitlement,
    NewRecord,
    ReportRow,
    WindowKey,
    WindowUsage,
)


class UsageRepository(Protocol):
    # -- ingestion ------------------------------------------------------------------------------
    def entitlements(self, ids: Iterable[str]) -> dict[str, MeteredEntitlement]:
        """The entitlements among `ids` that exist, with their reporting timeline."""

    def reported_until(self, ids: Iterable[str]) -> dict[str, datetime]:
        """Per entitlement, the end of its last window in the ledger (before it: late)."""

    def insert_records(self, rows: Sequence[NewRecord]) -> int:
        """Store records, skipping ids already stored (even concurrently); how many were new."""

    def existing_record_ids(self, ids: Iterable[str]) -> set[str]: ...

    # -- closing windows ------------------------------------------------------------------------
    def metered_entitlements(self) -> dict[str, MeteredEntitlement]:
        """Every entitlement that may have usage to report (a usageReportingId, once active)."""

    def ledger_state(self, ids: Iterable[str]) -> LedgerState: ...

    def stray_records(self) -> list[tuple[int, str]]:
        """(id, entitlement) of the unstamped records whose window is already in the ledger."""

    def move_records(self, moves: Mapping[datetime, Sequence[int]]) -> None:
        """Move records (by id) into the window starting at each key."""

    def stamp_and_sum(self, windows: Sequence[WindowKey]) -> dict[str, WindowUsage]:
        """Stamp each window's unstamped records with its operationId; sums by operationId."""

    def preview_sums(
        self, entitlement_ids: Iterable[str]
    ) -> dict[tuple[str, datetime], dict[str, Decimal]]:
        """The sums of unstamped records per (entitlement, window start), changing nothing."""

    def add_reports(self, rows: Sequence[ReportRow]) -> None:
        """New ledger rows; an operationId already there raises `adapters.db.errors.IntegrityError`
        (when the unit of work flushes or commits)."""

    # -- sending --------------------------------------------------------------------------------
    def unfinished(self, of: Iterable[str] | None = None) -> list[ReportRow]:
        """Ledger rows still to send (`pending`, `sent`), oldest window first; with `of`, only
        those of these entitlements."""

    def update_reports(self, changes: Sequence[dict[str, Any]]) -> None:
        """Per-row changes: `id` plus the columns to set."""

    # -- what is reported -----------------------------------------------------------------------
    def reports_of(self, entitlement_id: str) -> list[ReportRow]: ...

    def ingested(self, entitlement_id: str) -> list[tuple[datetime, str, Decimal]]:
        """(window start, metric, sum) of an entitlement's records."""

    def unreported_records(self) -> list[tuple[str, int, datetime]]:
        """(entitlement, count, oldest window) of the records no window has stamped yet."""


class UsageUnit(Protocol):
    """A unit of work as metering uses it (`service.unit_of_work.UnitOfWork` has more)."""

    @property
    def usage(self) -> UsageRepository: ...


class MeteringApp(Protocol):
    """What ingestion needs of the application (`bootstrap.Container`)."""

    @property
    def settings(self) -> Settings: ...
    def now(self) -> datetime: ...
    def unit_of_work(self) -> AbstractContextManager[UsageUnit]: ...
    def reading(self) -> AbstractContextManager[UsageUnit]: ...
