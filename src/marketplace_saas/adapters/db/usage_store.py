"""Database access for metering: bulk insert of usage records, entitlement timelines, the ledger.

Inserts use the dialect's `INSERT ... ON CONFLICT (record_id) DO NOTHING`, so a repeated
idempotency key, even one inserted at the same moment by another request, is skipped by the
database and counted as a duplicate by the caller (the inserted rows are counted by the cursor's
rowcount: of one `INSERT ... SELECT FROM unnest(<one array per column>)` on PostgreSQL, of one
`executemany` on SQLite).

Ingestion is the hot path (docs/performance.md, "Metering"): its reads are plain SQL with every id
in one parameter, its inserts skip SQLAlchemy's per-parameter processing, and the
entitlements it builds are memoised on the exact content of their rows, so a changed row (a plan
change, a cancellation) is always built afresh.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import Entitlement, UsageRecord
from marketplace_saas.domain.metering import MeteredEntitlement, NewRecord
from marketplace_saas.domain.usage import PlanChange, Timeline

CHUNK = 500  # ids per IN (...) clause: well under every backend's bound-parameter limit
BIG_CHUNK = 10_000  # ids per query when they travel as one parameter (a JSON list or an array)
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_COLUMNS = (  # of an entitlement row, in the order of `_Sql.entitlements` (then its external name)
    Entitlement.id,
    Entitlement.product,
    Entitlement.plan,
    Entitlement.usage_reporting_id,
    Entitlement.service_enabled,
    Entitlement.service_suspended_reason,
    Entitlement.active_since,
    Entitlement.cancelled_at,
)
_WHEN = 6  # the index of a UtcDateTime column in `_COLUMNS` (for effective_at and window_end)


@dataclass(frozen=True)
class _Sql:
    """Ingestion's statements in one dialect; `ids` is the one parameter holding a list of ids."""

    entitlements: str
    history: str
    reported_until: str
    insert: str
    json_ids: bool  # SQLite: the ids as one JSON text; PostgreSQL: as one array

    def ids(self, ids: Sequence[str]) -> Any:
        return json.dumps(list(ids)) if self.json_ids else list(ids)


_SQL = {
    "sqlite": _Sql(
        entitlements="SELECT id, product, plan, usage_reporting_id, service_enabled, "
        "service_suspended_reason, active_since, cancelled_at, "
        "json_extract(raw, '$.\"productExternalName\"') FROM entitlements "
        "WHERE id IN (SELECT value FROM json_each(?))",
        history="SELECT entitlement_id, plan, effective_at, previous_plan FROM plan_history "
        "WHERE entitlement_id IN (SELECT value FROM json_each(?)) ORDER BY id",
        reported_until="SELECT entitlement_id, max(window_end) FROM usage_reports "
        "WHERE entitlement_id IN (SELECT value FROM json_each(?)) GROUP BY entitlement_id",
        insert="INSERT INTO usage_records (record_id, entitlement_id, metric, value, time, "
        "window_start, labels, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (record_id) DO NOTHING",
        json_ids=True,
    ),
    "postgresql": _Sql(
        entitlements="SELECT id, product, plan, usage_reporting_id, service_enabled, "
        "service_suspended_reason, active_since, cancelled_at, "
        "raw ->> 'productExternalName' FROM entitlements WHERE id IN (SELECT unnest(%b::text[]))",
        history="SELECT entitlement_id, plan, effective_at, previous_plan FROM plan_history "
        "WHERE entitlement_id IN (SELECT unnest(%b::text[])) ORDER BY id",
        reported_until="SELECT entitlement_id, max(window_end) FROM usage_reports "
        "WHERE entitlement_id IN (SELECT unnest(%b::text[])) GROUP BY entitlement_id",
        # One statement whatever the batch's size: each column is one array parameter, but
        # the labels: each distinct set once (the first array), and per record its position.
        # The values travel as decimal text (`str(Decimal)`, exact) that the server reads as
        # numeric: psycopg's binary numeric dumper costs three times more per value.
        insert="INSERT INTO usage_records (record_id, entitlement_id, metric, value, time, "
        "window_start, labels, received_at) SELECT r.record_id, r.entitlement_id, r.metric, "
        "r.value, r.time, r.window_start, (%b::jsonb[])[r.labels], r.received_at "
        "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]::numeric[], %b::timestamptz[], "
        "%b::timestamptz[], %b::int4[], %b::timestamptz[]) AS r(record_id, entitlement_id, "
        "metric, value, time, window_start, labels, received_at) "
        "ON CONFLICT (record_id) DO NOTHING",
        json_ids=False,
    ),
}
Processor = Callable[[Any], Any] | None
_MEMO_LIMIT = 50_000  # entitlements kept built (about 750 bytes each); emptied when full
_memo: dict[tuple[Any, ...], MeteredEntitlement] = {}


def _sql(dialect: sa.Dialect) -> _Sql:
    try:
        return _SQL[dialect.name]
    except KeyError:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database dialect {dialect.name!r}") from None


def _fetch(connection: sa.Connection, statement: str, parameters: tuple[Any, ...]) -> list[Any]:
    """The rows of a plain SQL query, as the driver gives them (tuples of raw values)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement, parameters)
        return list(cursor.fetchall())
    finally:
        cursor.close()


@functools.cache
def _result_processors(dialect: sa.Dialect) -> tuple[Processor, ...]:
    """SQLAlchemy's own result processors of `_COLUMNS`, then of the external name (text)."""
    types = [c.type for c in _COLUMNS] + [sa.String()]
    return tuple(t.dialect_impl(dialect).result_processor(dialect, None) for t in types)


def _metered(row: Sequence[Any], changes: Sequence[PlanChange]) -> MeteredEntitlement:
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


def _build(
    dialect: sa.Dialect, row: tuple[Any, ...], history: tuple[tuple[Any, ...], ...]
) -> MeteredEntitlement:
    """The entitlement of one raw row and its raw plan history, memoised on exactly that content.

    Any change to the row or to its history (a plan change, a cancellation) is a new key.
    """
    key = (dialect.name, row, history)
    built = _memo.get(key)
    if built is None:
        processors = _result_processors(dialect)
        when = processors[_WHEN]
        values = [v if p is None else p(v) for v, p in zip(row, processors, strict=True)]
        changes = [PlanChange(plan, when(at) if when else at, old) for plan, at, old in history]
        built = _metered(values, changes)
        if len(_memo) >= _MEMO_LIMIT:
            _memo.clear()
        _memo[key] = built
    return built


def load_entitlements(session: Session, ids: Iterable[str]) -> dict[str, MeteredEntitlement]:
    """The entitlements among `ids` that exist, with their plan history."""
    wanted = sorted(set(ids))
    connection = session.connection()
    dialect = connection.dialect
    sql = _sql(dialect)
    rows: list[tuple[Any, ...]] = []
    history: dict[str, list[tuple[Any, ...]]] = {}
    for part in chunks(wanted, BIG_CHUNK):
        parameter = (sql.ids(part),)
        rows += _fetch(connection, sql.entitlements, parameter)
        for entitlement_id, plan, effective_at, previous in _fetch(
            connection, sql.history, parameter
        ):
            history.setdefault(entitlement_id, []).append((plan, effective_at, previous))
    return {row[0]: _build(dialect, row, tuple(history.get(row[0], ()))) for row in rows}


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
    connection = session.connection()
    dialect = connection.dialect
    sql = _sql(dialect)
    process = _result_processors(dialect)[_WHEN]
    out: dict[str, datetime] = {}
    for part in chunks(wanted, BIG_CHUNK):
        parameter = (sql.ids(part),)
        for entitlement_id, end in _fetch(connection, sql.reported_until, parameter):
            if end is not None:
                out[entitlement_id] = _aware(process(end) if process else end)
    return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def sqlite_datetime(value: datetime) -> str:
    """How SQLAlchemy stores an aware `UtcDateTime` on SQLite: naive UTC text, microseconds."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def insert_records(session: Session, rows: Sequence[NewRecord]) -> int:
    """Insert usage records, skipping existing `record_id`s; how many were inserted.

    One statement on the session's own connection and transaction. The cursor's rowcount counts
    only the rows inserted: `ON CONFLICT DO NOTHING` changes none for an id already stored, and
    waits for a concurrent transaction that inserted the same id to end before deciding.
    """
    if not rows:
        return 0
    connection = session.connection()
    dialect = connection.dialect
    statement = _sql(dialect).insert
    cursor = connection.connection.cursor()
    try:
        if dialect.name == "postgresql":
            cursor.execute(statement, _pg_columns(rows))
        else:
            cursor.executemany(statement, _sqlite_rows(dialect, rows))
        return int(cursor.rowcount)
    finally:
        cursor.close()


def _pg_columns(rows: Sequence[NewRecord]) -> list[list[Any]]:
    """The parameters of the PostgreSQL insert: the batch's distinct label sets (JSONB, each
    parsed once by the server), then the eight columns of `rows`, each as one list (bound as an
    array), the values as their decimal text, the labels as positions (from 1) in the first
    list."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    columns[3] = [str(value) for value in columns[3]]  # read as numeric by the statement
    for times in columns[4], columns[5], columns[7]:  # `UtcDateTime` refuses a naive time
        if any(moment.tzinfo is None for moment in times):
            raise ValueError("naive datetime given to a UTC column")
    distinct: dict[tuple[tuple[str, str], ...], int] = {}
    label_sets: list[Jsonb] = []
    positions = []
    for labels in columns[6]:
        key = tuple(labels.items())
        position = distinct.get(key)
        if position is None:
            label_sets.append(Jsonb(labels))
            position = distinct[key] = len(label_sets)
        positions.append(position)
    columns[6] = positions
    return [label_sets, *columns]


def _sqlite_rows(dialect: sa.Dialect, rows: Sequence[NewRecord]) -> list[tuple[Any, ...]]:
    """Each row's values converted as SQLAlchemy would: `sqlite_datetime`, the Numeric and
    JSON columns' own bind processors."""
    table = cast(sa.Table, UsageRecord.__table__)
    number = table.c.value.type.dialect_impl(dialect).bind_processor(dialect) or _same
    serialise = table.c.labels.type.dialect_impl(dialect).bind_processor(dialect) or _same
    starts: dict[datetime, str] = {}  # window starts and receiving times repeat; times rarely
    label_texts: dict[tuple[tuple[str, str], ...], Any] = {}

    def start_text(moment: datetime) -> str:
        found = starts.get(moment)
        if found is None:
            found = starts[moment] = sqlite_datetime(moment)
        return found

    def labels(value: dict[str, str]) -> Any:
        key = tuple(value.items())
        found = label_texts.get(key)
        if found is None:
            found = label_texts[key] = serialise(value)
        return found

    return [
        (
            row.record_id,
            row.entitlement_id,
            row.metric,
            number(row.value),
            sqlite_datetime(row.time),
            start_text(row.window_start),
            labels(row.labels),
            start_text(row.received_at),
        )
        for row in rows
    ]


def _same(value: Any) -> Any:
    return value


def existing_record_ids(session: Session, ids: Iterable[str]) -> set[str]:
    """The ids among `ids` already stored."""
    wanted = sorted(set(ids))
    found: set[str] = set()
    for part in chunks(wanted):
        query = sa.select(UsageRecord.record_id).where(UsageRecord.record_id.in_(part))
        found.update(session.scalars(query).all())
    return found
