"""The report ledger's database side: close due windows, carry stray records, record outcomes.

Closing a window happens in one transaction: its records are stamped with the window's operationId
first, then summed by that stamp (so a record arriving meanwhile is either in the sum or left
unstamped, never stamped and uncounted), and a `usage_reports` row is written as `pending` (or
`skipped`: nothing to report). Google is called only after that commit.

int64 metrics report the whole units of a window; the fraction is carried into the entitlement's
next window (by the provider's metric name) and the last window rounds half up.

One reporter at a time: `run_lock` is held for a whole run (close and send). A second run finds it
taken and stops with `ANOTHER_RUN`, changing nothing: on PostgreSQL a session advisory lock, on
SQLite an exclusive `flock` on `<database>.report-usage.lock` (a process-wide lock for `:memory:`).
Both are released when their holder ends, a crash included.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import UsageRecord, UsageReport
from marketplace_saas.adapters.db.usage_store import MeteredEntitlement, chunks
from marketplace_saas.adapters.usage_catalog import MetricSpec, UsageCatalog
from marketplace_saas.domain.usage import Window, operation_id, split_integer, user_labels

log = structlog.get_logger(__name__)

RECORDS = cast(sa.Table, UsageRecord.__table__)
REPORTS = cast(sa.Table, UsageReport.__table__)
UNFINISHED = ("pending", "sent")
OPERATION_NAME = "Hourly Usage Report"
ANOTHER_RUN = "another report-usage run is reporting these windows"
_ADVISORY_KEY = 0x6D70735F75736167  # "mps_usag": the reporter's PostgreSQL advisory lock
_MEMORY_LOCK = threading.Lock()


@contextlib.contextmanager
def run_lock(engine: sa.Engine) -> Iterator[bool]:
    """Hold the reporter's lock for the block: yields False when another run holds it."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            key = sa.literal(_ADVISORY_KEY, sa.BigInteger)
            got = bool(connection.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar())
            connection.commit()
            try:
                yield got
            finally:
                if got:
                    connection.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                    connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        got = _MEMORY_LOCK.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                _MEMORY_LOCK.release()
        return
    with open(f"{database}.report-usage.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def operation_json(row: UsageReport, *, for_report: bool) -> dict[str, Any]:
    """The Service Control Operation of one ledger row (the same bytes on every re-send)."""
    value_sets = []
    for name, entry in sorted(row.metric_values.items()):
        if not isinstance(entry, dict) or "type" not in entry:
            continue
        value: dict[str, Any] = (
            {"int64Value": str(entry["value"])}
            if entry["type"] == "int64"
            else {"doubleValue": float(entry["value"])}
        )
        value_sets.append({"metricName": name, "metricValues": [value]})
    operation: dict[str, Any] = {
        "operationId": row.operation_id,
        "operationName": OPERATION_NAME,
        "consumerId": row.consumer_id,
        "startTime": rfc3339(row.window_start),
        "endTime": rfc3339(row.window_end),
        "metricValueSets": value_sets,
    }
    if for_report and row.user_labels:
        operation["userLabels"] = dict(row.user_labels)
    return operation


def service_of(row: UsageReport) -> str:
    name = next(k for k, v in row.metric_values.items() if isinstance(v, dict) and "type" in v)
    return name.rsplit("/", 1)[0]


@dataclass
class NewWindow:
    entitlement: MeteredEntitlement
    window: Window
    operation_id: str
    metrics: dict[str, MetricSpec]
    service: str | None
    final: bool
    # Filled by the aggregation: provider metric -> sum; and the label sets seen.
    sums: dict[str, Decimal] = field(default_factory=dict)
    label_sets: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class LedgerState:
    """Per entitlement: where its ledger ends, and the fractions carried out of that window."""

    until: dict[str, datetime]
    carry: dict[str, dict[str, Decimal]]


def ledger_state(session: Session, ids: Iterable[str]) -> LedgerState:
    until: dict[str, datetime] = {}
    carry: dict[str, dict[str, Decimal]] = {}
    for part in chunks(sorted(set(ids))):
        last = (
            sa.select(UsageReport.entitlement_id, sa.func.max(UsageReport.window_end).label("end"))
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
        for entitlement_id, end, values in session.execute(query):
            until[entitlement_id] = end
            carried = {
                v["metric"]: Decimal(v["carry_out"])
                for v in (values or {}).values()
                if isinstance(v, dict) and "type" in v and v.get("carry_out") not in (None, "0")
            }
            if carried:
                carry[entitlement_id] = carried
    return LedgerState(until, carry)


def due_windows(
    entitlements: Iterable[MeteredEntitlement],
    state: LedgerState,
    catalog: UsageCatalog,
    horizon: datetime,
) -> list[NewWindow]:
    """Every window ended before `horizon` and not yet in the ledger, per entitlement in order."""
    out: list[NewWindow] = []
    for entitlement in entitlements:
        timeline = entitlement.timeline
        if timeline is None or not entitlement.usage_reporting_id:
            continue
        product = catalog.product(entitlement.product, entitlement.product_external_name)
        since = state.until.get(entitlement.id, timeline.active_since)
        for window in timeline.windows(since, horizon):
            metrics = catalog.plan_metrics(product, window.plan)
            out.append(
                NewWindow(
                    entitlement=entitlement,
                    window=window,
                    operation_id=operation_id(entitlement.id, window.start, window.plan),
                    metrics=metrics,
                    service=product.service if product else None,
                    final=window.end == timeline.cancelled_at,
                )
            )
    return out


def stamp_and_sum(session: Session, windows: Sequence[NewWindow]) -> None:
    """Stamp each window's unreported records with its operationId, then sum them by stamp."""
    by_op = {w.operation_id: w for w in windows}
    params = [
        {"op": w.operation_id, "ent": w.entitlement.id, "ws": w.window.start} for w in windows
    ]
    if not params:
        return
    stamp = (
        sa.update(RECORDS)
        .where(
            RECORDS.c.entitlement_id == sa.bindparam("ent"),
            RECORDS.c.window_start == sa.bindparam("ws"),
            RECORDS.c.operation_id.is_(None),
        )
        .values(operation_id=sa.bindparam("op"))
    )
    session.connection().execute(stamp, params)
    for part in chunks(list(by_op)):
        sums = sa.select(RECORDS.c.operation_id, RECORDS.c.metric, sa.func.sum(RECORDS.c.value))
        sums = sums.where(RECORDS.c.operation_id.in_(part)).group_by(
            RECORDS.c.operation_id, RECORDS.c.metric
        )
        for op, metric, total in session.execute(sums):
            by_op[op].sums[metric] = Decimal(total)
        labels = sa.select(RECORDS.c.operation_id, RECORDS.c.labels).where(
            RECORDS.c.operation_id.in_(part)
        )
        for op, label_set in session.execute(labels.distinct()):
            by_op[op].label_sets.append(label_set or {})


def preview_sums(session: Session, windows: Sequence[NewWindow]) -> None:
    """What `stamp_and_sum` would find, changing nothing (for `--dry-run`)."""
    by_key = {(w.entitlement.id, w.window.start): w for w in windows}
    for part in chunks(sorted({w.entitlement.id for w in windows})):
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
        for entitlement_id, window_start, metric, total in session.execute(query):
            window = by_key.get((entitlement_id, window_start))
            if window is not None:
                window.sums[metric] = Decimal(total)


def ledger_rows(
    windows: Sequence[NewWindow], state: LedgerState, *, report_zero: bool, now: datetime
) -> list[dict[str, Any]]:
    """The `usage_reports` rows of `windows` (in order per entitlement), carrying fractions."""
    carry = {k: dict(v) for k, v in state.carry.items()}
    rows: list[dict[str, Any]] = []
    for w in windows:
        carried = carry.pop(w.entitlement.id, {})
        values: dict[str, Any] = {}
        for name, spec in w.metrics.items():
            total = w.sums.get(name, Decimal(0)) + carried.pop(name, Decimal(0))
            entry: dict[str, Any] = {"metric": name, "type": spec.value_type, "sum": str(total)}
            if spec.value_type == "int64":
                whole, remainder = split_integer(total, final=w.final)
                entry["value"] = str(whole)
                if remainder:
                    entry["carry_out"] = str(remainder)
                    carry.setdefault(w.entitlement.id, {})[name] = remainder
            else:
                entry["value"] = str(total)
            values[f"{w.service}/{spec.metric_id}"] = entry
        stray = {m: str(v) for m, v in w.sums.items() if m not in w.metrics}
        if stray or any(v for v in carried.values()):
            # Usage under a metric this window's plan does not report (carried across a plan
            # change): kept visible in the ledger, never sent.
            values["unreportable"] = {**stray, **{m: str(v) for m, v in carried.items() if v}}
            log.error(
                "usage.unreportable",
                entitlement_id=w.entitlement.id,
                metrics=values["unreportable"],
            )
        zero = all(
            Decimal(e["value"]) == 0 for e in values.values() if isinstance(e, dict) and "type" in e
        )
        nothing = not w.metrics or (not report_zero and zero)
        rows.append(
            {
                "operation_id": w.operation_id,
                "entitlement_id": w.entitlement.id,
                "consumer_id": w.entitlement.usage_reporting_id,
                "plan": w.window.plan,
                "window_start": w.window.start,
                "window_end": w.window.end,
                "metric_values": values,
                "user_labels": user_labels(w.label_sets),
                "status": "skipped" if nothing else "pending",
                "attempts": 0,
                "created_at": now,
                "completed_at": now if nothing else None,
            }
        )
    return rows


def insert_ledger_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    for part in chunks(list(rows), 2000):
        session.execute(sa.insert(REPORTS), list(part))


def carry_stray_records(
    session: Session, entitlements: dict[str, MeteredEntitlement], state: LedgerState
) -> tuple[int, int]:
    """Move unstamped records of already-reported windows into the first open window.

    Ingestion does this itself; a record written while the reporter closed its window can still
    end up here. Returns (moved, stranded): stranded records have no open window left.
    """
    closed = sa.exists().where(
        REPORTS.c.entitlement_id == RECORDS.c.entitlement_id,
        REPORTS.c.window_start == RECORDS.c.window_start,
    )
    query = sa.select(RECORDS.c.id, RECORDS.c.entitlement_id).where(
        RECORDS.c.operation_id.is_(None), closed
    )
    moves: dict[datetime, list[int]] = defaultdict(list)
    stranded = 0
    for record_id, entitlement_id in session.execute(query):
        entitlement = entitlements.get(entitlement_id)
        until = state.until.get(entitlement_id)
        timeline = entitlement.timeline if entitlement else None
        if timeline is None or until is None or not timeline.is_active_at(until):
            stranded += 1
            log.error("usage.stranded_record", entitlement_id=entitlement_id, id=record_id)
            continue
        moves[timeline.window_at(until).start].append(record_id)
    for window_start, ids in moves.items():
        for part in chunks(ids):
            session.execute(
                sa.update(RECORDS).where(RECORDS.c.id.in_(part)).values(window_start=window_start)
            )
    return sum(len(ids) for ids in moves.values()), stranded


def unfinished(session: Session) -> list[UsageReport]:
    """Ledger rows still to send, oldest window first."""
    query = (
        sa.select(UsageReport)
        .where(UsageReport.status.in_(UNFINISHED))
        .order_by(UsageReport.window_start, UsageReport.entitlement_id)
    )
    return list(session.scalars(query))


def update_rows(session: Session, changes: Sequence[dict[str, Any]]) -> None:
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
        session.connection().execute(statement, params)
