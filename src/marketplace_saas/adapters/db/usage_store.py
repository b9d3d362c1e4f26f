"""Database access for metering: bulk insert of usage records, entitlement timelines, the ledger.

Inserts use the dialect's `INSERT ... ON CONFLICT (record_id) DO NOTHING RETURNING record_id`, so a
repeated idempotency key, even one inserted at the same moment by another request, is skipped by
the database and counted as a duplicate by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import Entitlement, PlanHistory, UsageRecord, UsageReport
from marketplace_saas.domain.usage import PlanChange, Timeline

CHUNK = 500  # ids per IN (...) clause: well under every backend's bound-parameter limit
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class MeteredEntitlement:
    """What metering needs of one entitlement: its record and its reporting timeline."""

    id: str
    product: str | None
    product_external_name: str | None
    plan: str | None
    usage_reporting_id: str | None
    service_enabled: bool
    service_suspended_reason: str | None
    timeline: Timeline | None  # None: never active


_COLUMNS = (
    Entitlement.id,
    Entitlement.product,
    Entitlement.plan,
    Entitlement.usage_reporting_id,
    Entitlement.service_enabled,
    Entitlement.service_suspended_reason,
    Entitlement.active_since,
    Entitlement.cancelled_at,
    Entitlement.raw["productExternalName"].as_string(),
)


def _metered(row: Any, changes: Sequence[PlanChange]) -> MeteredEntitlement:
    (entitlement_id, product, plan, usage_id, enabled, reason, since, cancelled, external) = row
    timeline = None
    if since is not None and plan is not None:
        timeline = Timeline.build(
            active_since=since, cancelled_at=cancelled, current_plan=plan, changes=changes
        )
    return MeteredEntitlement(
        id=entitlement_id,
        product=product,
        product_external_name=external if isinstance(external, str) else None,
        plan=plan,
        usage_reporting_id=usage_id,
        service_enabled=enabled,
        service_suspended_reason=reason,
        timeline=timeline,
    )


def load_entitlements(session: Session, ids: Iterable[str]) -> dict[str, MeteredEntitlement]:
    """The entitlements among `ids` that exist, with their plan history."""
    wanted = sorted(set(ids))
    rows: list[Any] = []
    changes: dict[str, list[PlanChange]] = {}
    for part in chunks(wanted):
        rows += session.execute(sa.select(*_COLUMNS).where(Entitlement.id.in_(part))).all()
        history = session.execute(
            sa.select(
                PlanHistory.entitlement_id,
                PlanHistory.plan,
                PlanHistory.effective_at,
                PlanHistory.previous_plan,
            ).where(PlanHistory.entitlement_id.in_(part))
        )
        for entitlement_id, plan, effective_at, previous in history:
            changes.setdefault(entitlement_id, []).append(PlanChange(plan, effective_at, previous))
    return {row[0]: _metered(row, changes.get(row[0], ())) for row in rows}


def load_metered_entitlements(session: Session) -> dict[str, MeteredEntitlement]:
    """Every entitlement that may have usage to report (a usageReportingId, once active)."""
    ids = session.scalars(
        sa.select(Entitlement.id).where(
            Entitlement.usage_reporting_id.is_not(None), Entitlement.active_since.is_not(None)
        )
    ).all()
    return load_entitlements(session, ids)


def reported_until(session: Session, ids: Iterable[str]) -> dict[str, datetime]:
    """Per entitlement, the end of its last window in the report ledger.

    The reporter writes windows in time order, so every window before this moment has a ledger
    row: a record for such a window is late.
    """
    wanted = sorted(set(ids))
    out: dict[str, datetime] = {}
    for part in chunks(wanted):
        query = (
            sa.select(UsageReport.entitlement_id, sa.func.max(UsageReport.window_end))
            .where(UsageReport.entitlement_id.in_(part))
            .group_by(UsageReport.entitlement_id)
        )
        for entitlement_id, end in session.execute(query):
            if end is not None:
                out[entitlement_id] = _aware(end)
    return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def insert_records(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert usage records, skipping existing `record_id`s; the ids actually inserted."""
    if not rows:
        return set()
    table = cast(sa.Table, UsageRecord.__table__)
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        statement: Any = sqlite.insert(table).on_conflict_do_nothing(index_elements=["record_id"])
    elif dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=["record_id"])
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    result = session.execute(statement.returning(table.c.record_id), list(rows))
    return set(result.scalars().all())


def existing_record_ids(session: Session, ids: Iterable[str]) -> set[str]:
    """The ids among `ids` already stored."""
    wanted = sorted(set(ids))
    found: set[str] = set()
    for part in chunks(wanted):
        query = sa.select(UsageRecord.record_id).where(UsageRecord.record_id.in_(part))
        found.update(session.scalars(query).all())
    return found
