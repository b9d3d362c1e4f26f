"""Metering's store in SQL: `SqlUsage` (the usage records and the report ledger over one session).
The reporters' claims on their shards are `replica_locks.report_claims`.

Closing a window stamps its records with the window's operationId first, then sums them by that
stamp, in the caller's transaction: a record arriving meanwhile is either in the sum or left
unstamped, never stamped and uncounted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db import usage_store
from marketplace_saas.adapters.db.models import UsageRecord, UsageReport
from marketplace_saas.adapters.db.usage_store import chunks
from marketplace_saas.domain.metering import (
    UNFINISHED,
    LedgerState,
    MeteredEntitlement,
    NewRecord,
    ReportRow,
    WindowKey,
    WindowUsage,
)

RECORDS = cast(sa.Table, UsageRecord.__table__)
REPORTS = cast(sa.Table, UsageReport.__table__)
_ROW_COLUMNS = (
    REPORTS.c.operation_id,
    REPORTS.c.entitlement_id,
    REPORTS.c.consumer_id,
    REPORTS.c.plan,
    REPORTS.c.window_start,
    REPORTS.c.window_end,
    REPORTS.c.metric_values,
    REPORTS.c.user_labels,
    REPORTS.c.status,
    REPORTS.c.attempts,
    REPORTS.c.id,
    REPORTS.c.error,
    REPORTS.c.created_at,
    REPORTS.c.completed_at,
)


def _report(row: Sequence[Any]) -> ReportRow:
    values = list(row)
    values[6] = dict(values[6] or {})
    values[7] = dict(values[7]) if values[7] else None
    return ReportRow(*values)


class SqlUsage:
    """The usage records and the report ledger (`service.metering.ports.UsageRepository`)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- ingestion (the hot path: `usage_store`) ---------------------------------------------

    def entitlements(self, ids: Iterable[str]) -> dict[str, MeteredEntitlement]:
        return usage_store.load_entitlements(self.session, ids)

    def reported_until(self, ids: Iterable[str]) -> dict[str, datetime]:
        return usage_store.reported_until(self.session, ids)

    def insert_records(self, rows: Sequence[NewRecord]) -> int:
        return usage_store.insert_records(self.session, rows)

    def existing_record_ids(self, ids: Iterable[str]) -> set[str]:
        return usage_store.existing_record_ids(self.session, ids)

    # -- closing windows ----------------------------------------------------------------------

    def metered_entitlements(self) -> dict[str, MeteredEntitlement]:
        return usage_store.load_metered_entitlements(self.session)

    def ledger_state(self, ids: Iterable[str]) -> LedgerState:
        until: dict[str, datetime] = {}
        carry: dict[str, dict[str, Decimal]] = {}
        for part in chunks(sorted(set(ids))):
            last = (
                sa.select(
                    UsageReport.entitlement_id, sa.func.max(UsageReport.window_end).label("end")
                )
                .where(UsageReport.entitlement_id.in_(part))
                .group_by(UsageReport.entitlement_id)
                .subquery()
            )
            query = sa.select(
                UsageReport.entitlement_id, UsageReport.window_end, UsageReport.metric_values
            ).join(
                last,
                sa.and_(
                    last.c.entitlement_id == UsageReport.entitlement_id,
                    last.c.end == UsageReport.window_end,
                ),
            )
            for entitlement_id, end, values in self.session.execute(query):
                until[entitlement_id] = end
                carried = {
                    v["metric"]: Decimal(v["carry_out"])
                    for v in (values or {}).values()
                    if isinstance(v, dict) and "type" in v and v.get("carry_out") not in (None, "0")
                }
                if carried:
                    carry[entitlement_id] = carried
        return LedgerState(until, carry)

    def stray_records(self) -> list[tuple[int, str]]:
        """(id, entitlement) of the unstamped records whose window is already in the ledger."""
        closed = sa.exists().where(
            REPORTS.c.entitlement_id == RECORDS.c.entitlement_id,
            REPORTS.c.window_start == RECORDS.c.window_start,
        )
        query = sa.select(RECORDS.c.id, RECORDS.c.entitlement_id).where(
            RECORDS.c.operation_id.is_(None), closed
        )
        return [
            (int(record_id), str(entitlement))
            for record_id, entitlement in self.session.execute(query)
        ]

    def move_records(self, moves: Mapping[datetime, Sequence[int]]) -> None:
        """Move records (by id) into the window starting at each key."""
        for window_start, ids in moves.items():
            for part in chunks(list(ids)):
                self.session.execute(
                    sa.update(RECORDS)
                    .where(RECORDS.c.id.in_(part))
                    .values(window_start=window_start)
                )

    def stamp_and_sum(self, windows: Sequence[WindowKey]) -> dict[str, WindowUsage]:
        """Stamp each window's unstamped records with its operationId, then sum them by stamp."""
        found: dict[str, WindowUsage] = {}
        if not windows:
            return found
        params = [
            {"op": w.operation_id, "ent": w.entitlement_id, "ws": w.window_start} for w in windows
        ]
        stamp = (
            sa.update(RECORDS)
            .where(
                RECORDS.c.entitlement_id == sa.bindparam("ent"),
                RECORDS.c.window_start == sa.bindparam("ws"),
                RECORDS.c.operation_id.is_(None),
            )
            .values(operation_id=sa.bindparam("op"))
        )
        self.session.connection().execute(stamp, params)
        for part in chunks([w.operation_id for w in windows]):
            sums = sa.select(RECORDS.c.operation_id, RECORDS.c.metric, sa.func.sum(RECORDS.c.value))
            sums = sums.where(RECORDS.c.operation_id.in_(part)).group_by(
                RECORDS.c.operation_id, RECORDS.c.metric
            )
            for op, metric, total in self.session.execute(sums):
                found.setdefault(op, WindowUsage()).sums[metric] = Decimal(total)
            labels = sa.select(RECORDS.c.operation_id, RECORDS.c.labels).where(
                RECORDS.c.operation_id.in_(part)
            )
            for op, label_set in self.session.execute(labels.distinct()):
                found.setdefault(op, WindowUsage()).label_sets.append(label_set or {})
        return found

    def preview_sums(
        self, entitlement_ids: Iterable[str]
    ) -> dict[tuple[str, datetime], dict[str, Decimal]]:
        """What `stamp_and_sum` would find, changing nothing: (entitlement, window) -> sums."""
        found: dict[tuple[str, datetime], dict[str, Decimal]] = {}
        for part in chunks(sorted(set(entitlement_ids))):
            query = (
                sa.select(
                    RECORDS.c.entitlement_id,
                    RECORDS.c.window_start,
                    RECORDS.c.metric,
                    sa.func.sum(RECORDS.c.value),
                )
                .where(RECORDS.c.entitlement_id.in_(part), RECORDS.c.operation_id.is_(None))
                .group_by(RECORDS.c.entitlement_id, RECORDS.c.window_start, RECORDS.c.metric)
            )
            for entitlement_id, window_start, metric, total in self.session.execute(query):
                found.setdefault((entitlement_id, window_start), {})[metric] = Decimal(total)
        return found

    def add_reports(self, rows: Sequence[ReportRow]) -> None:
        """Insert new ledger rows (a repeated operationId raises the database's IntegrityError)."""
        values = [
            {c.name: getattr(row, c.name) for c in _ROW_COLUMNS if c.name != "id"} for row in rows
        ]
        for part in chunks(values, 2000):
            self.session.execute(sa.insert(REPORTS), list(part))

    # -- sending ------------------------------------------------------------------------------

    def unfinished(self, of: Iterable[str] | None = None) -> list[ReportRow]:
        """Ledger rows still to send, oldest window first (of the entitlements `of`, if given)."""
        query = sa.select(*_ROW_COLUMNS).where(REPORTS.c.status.in_(UNFINISHED))
        if of is None:
            order = query.order_by(REPORTS.c.window_start, REPORTS.c.entitlement_id)
            return [_report(row) for row in self.session.execute(order)]
        rows = [
            _report(row)
            for part in chunks(sorted(set(of)))
            for row in self.session.execute(query.where(REPORTS.c.entitlement_id.in_(part)))
        ]
        return sorted(rows, key=lambda r: (r.window_start, r.entitlement_id))

    def update_reports(self, changes: Sequence[dict[str, Any]]) -> None:
        """Apply per-row changes (`id` plus the columns to set), grouped by the columns they set."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for change in changes:
            groups[tuple(sorted(k for k in change if k != "id"))].append(change)
        for columns, rows in groups.items():
            statement = (
                sa.update(REPORTS)
                .where(REPORTS.c.id == sa.bindparam("row_id"))
                .values({c: sa.bindparam(f"v_{c}") for c in columns})
            )
            params = [{"row_id": r["id"], **{f"v_{c}": r[c] for c in columns}} for r in rows]
            self.session.connection().execute(statement, params)

    # -- what is reported (`usage show`, `usage pending`) -------------------------------------

    def reports_of(self, entitlement_id: str) -> list[ReportRow]:
        query = sa.select(*_ROW_COLUMNS).where(REPORTS.c.entitlement_id == entitlement_id)
        return [_report(row) for row in self.session.execute(query)]

    def ingested(self, entitlement_id: str) -> list[tuple[datetime, str, Decimal]]:
        """(window start, metric, sum) of an entitlement's records."""
        query = (
            sa.select(UsageRecord.window_start, UsageRecord.metric, sa.func.sum(UsageRecord.value))
            .where(UsageRecord.entitlement_id == entitlement_id)
            .group_by(UsageRecord.window_start, UsageRecord.metric)
        )
        return [(start, metric, total) for start, metric, total in self.session.execute(query)]

    def unreported_records(self) -> list[tuple[str, int, datetime]]:
        """(entitlement, count, oldest window) of the records no window has stamped yet."""
        query = (
            sa.select(
                UsageRecord.entitlement_id,
                sa.func.count(),
                sa.func.min(UsageRecord.window_start),
            )
            .where(UsageRecord.operation_id.is_(None))
            .group_by(UsageRecord.entitlement_id)
            .order_by(UsageRecord.entitlement_id)
        )
        return [(e, int(n), oldest) for e, n, oldest in self.session.execute(query)]
