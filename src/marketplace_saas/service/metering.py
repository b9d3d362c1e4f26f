"""Usage ingestion: `record_usage(container, records)`, the Python API behind `POST /v1/usage`.

Each record is `{id, entitlement, metric, value, time, labels}`; `id` is the caller's idempotency
key. A batch is checked record by record (each refusal has a reason), then every accepted record
is written in one transaction with insert-on-conflict-do-nothing: a repeated `id`, in the batch or
already stored (even by a concurrent request), is a duplicate, never counted twice.

Each record joins the window (entitlement, hour, plan) holding its time. A record whose window was
already reported is late: with `USAGE_LATE_POLICY=carry` (default) it joins the entitlement's
first window not yet reported, keeping its own time; with `reject` it is refused. The reporter is
`service/metering_report.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session, sessionmaker

from marketplace_saas.adapters.db import usage_store
from marketplace_saas.adapters.db.models import UsageRecord, UsageReport
from marketplace_saas.adapters.db.usage_store import MeteredEntitlement, NewRecord
from marketplace_saas.adapters.usage_catalog import UsageCatalog, load_catalog
from marketplace_saas.config import Settings
from marketplace_saas.domain.usage import (
    UsageError,
    Window,
    parse_labels,
    parse_time,
    parse_value,
)

log = structlog.get_logger(__name__)

MAX_SKEW = timedelta(minutes=5)  # how far in the future a record's time may be (clock skew)
MAX_ID_LENGTH = 200


class MeteringContainer(Protocol):
    """What metering needs of the application container (`bootstrap()` builds it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> sa.Engine: ...
    @property
    def sessions(self) -> sessionmaker[Session]: ...
    def now(self) -> datetime: ...


@dataclass(frozen=True)
class Rejection:
    id: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason}


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.to_json() for r in self.rejected],
        }


class _Parsed(NamedTuple):
    id: str
    entitlement: str
    metric: str
    value: Decimal
    time: datetime
    labels: dict[str, str]


def _text(value: object, key: str, limit: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{key} is required (a non-empty string)")
    if len(value) > limit:
        raise UsageError(f"{key} is longer than {limit} characters")
    return value


def _parse(record: object, now: datetime) -> _Parsed:
    if not isinstance(record, Mapping):
        raise UsageError("each record must be an object")
    get = record.get
    record_id = _text(get("id"), "id")
    entitlement = _text(get("entitlement"), "entitlement")
    if "/entitlements/" in entitlement:  # accept the full resource name too
        entitlement = entitlement.rsplit("/entitlements/", 1)[1]
    return _Parsed(
        record_id,
        entitlement,
        _text(get("metric"), "metric"),
        parse_value(get("value")),
        parse_time(get("time"), now=now, max_skew=MAX_SKEW),
        parse_labels(get("labels")),
    )


def _identify(record: object) -> str | None:
    if isinstance(record, Mapping) and isinstance(record.get("id"), str):
        return str(record["id"])[:MAX_ID_LENGTH]
    return None


class _Placement:
    """Decides the window of each record, from entitlements and ledger state read once per batch."""

    def __init__(
        self,
        entitlements: dict[str, MeteredEntitlement],
        reported_until: dict[str, datetime],
        catalog: UsageCatalog,
        late_policy: str,
    ) -> None:
        self._entitlements = entitlements
        self._reported_until = reported_until
        self._catalog = catalog
        self._late_policy = late_policy
        # (product, external name, plan, metric) -> None (known) or the refusal's reason
        self._metric_checks: dict[tuple[str | None, str | None, str, str], str | None] = {}

    def window(self, record: _Parsed) -> Window:
        entitlement = self._entitlements.get(record.entitlement)
        if entitlement is None:
            raise UsageError(f"unknown entitlement {record.entitlement!r}")
        if not entitlement.usage_reporting_id:
            raise UsageError(
                "entitlement is not usage-billed (it has no usageReportingId; "
                "Google may add one later: retry after the next sync)"
            )
        timeline = entitlement.timeline
        if timeline is None or not timeline.is_active_at(record.time):
            raise UsageError(f"entitlement was not active at {record.time.isoformat()}")
        window = timeline.window_at(record.time)
        self._check_metric(entitlement, window.plan, record.metric)
        until = self._reported_until.get(entitlement.id)
        if until is None or window.start >= until:
            return window
        if self._late_policy == "reject":
            raise UsageError(
                f"late: the window starting {window.start.isoformat()} was already reported"
            )
        if not timeline.is_active_at(until):
            raise UsageError(
                "late: the window was already reported and the entitlement has no later window "
                "(it was cancelled)"
            )
        carried = timeline.window_at(until)
        if carried.plan != window.plan:
            self._check_metric(entitlement, carried.plan, record.metric)
        return carried

    def _check_metric(self, entitlement: MeteredEntitlement, plan: str, metric: str) -> None:
        key = (entitlement.product, entitlement.product_external_name, plan, metric)
        if key not in self._metric_checks:
            try:
                self._check_metric_in_catalog(entitlement, plan, metric)
                self._metric_checks[key] = None
            except UsageError as exc:
                self._metric_checks[key] = str(exc)
        reason = self._metric_checks[key]
        if reason is not None:
            raise UsageError(reason)

    def _check_metric_in_catalog(
        self, entitlement: MeteredEntitlement, plan: str, metric: str
    ) -> None:
        product = self._catalog.product(entitlement.product, entitlement.product_external_name)
        metrics = self._catalog.plan_metrics(product, plan)
        if not metrics:
            where = "is not in the usage catalog" if product is None else "has no metrics"
            raise UsageError(
                f"entitlement is not usage-billed: plan {plan!r} of product "
                f"{entitlement.product!r} {where} ({self._catalog.source})"
            )
        if metric not in metrics:
            raise UsageError(
                f"unknown metric {metric!r} for plan {plan!r} (known: {', '.join(sorted(metrics))})"
            )


def record_usage(
    container: MeteringContainer, records: Sequence[object], *, source: str = "api"
) -> IngestResult:
    """Validate and store a batch of usage records; the counts and each refusal's reason."""
    settings = container.settings
    now = container.now()
    result = IngestResult()
    parsed: list[_Parsed] = []
    seen: set[str] = set()
    for record in records:
        try:
            item = _parse(record, now)
        except UsageError as exc:
            result.rejected.append(Rejection(_identify(record), str(exc)))
            continue
        if item.id in seen:
            result.duplicates += 1
            continue
        seen.add(item.id)
        parsed.append(item)
    if not parsed:
        return result
    catalog = load_catalog(settings)
    with container.sessions.begin() as session:
        placement = _placement(session, parsed, catalog, settings.usage_late_policy)
        rows: list[NewRecord] = []
        refused: list[Rejection] = []
        for item in parsed:
            try:
                window = placement.window(item)
            except UsageError as exc:
                refused.append(Rejection(item.id, str(exc)))
                continue
            rows.append(
                NewRecord(
                    item.id,
                    item.entitlement,
                    item.metric,
                    item.value,
                    item.time,
                    window.start,
                    item.labels,
                    now,
                )
            )
        inserted = usage_store.insert_records(session, rows)
        # A retry of a record stored earlier is a duplicate even if it would be refused now
        # (its window has since been reported, say).
        stored = usage_store.existing_record_ids(session, [r.id for r in refused if r.id])
    result.duplicates += len(stored)
    result.rejected += [r for r in refused if r.id not in stored]
    result.accepted = inserted
    result.duplicates += len(rows) - inserted
    log.info(
        "usage.ingested",
        source=source,
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=len(result.rejected),
    )
    return result


def _placement(
    session: Session, parsed: Iterable[_Parsed], catalog: UsageCatalog, late_policy: str
) -> _Placement:
    ids = {item.entitlement for item in parsed}
    entitlements = usage_store.load_entitlements(session, ids)
    until = usage_store.reported_until(session, entitlements)
    return _Placement(entitlements, until, catalog, late_policy)


# -- visibility -----------------------------------------------------------------------------------


def usage_history(container: MeteringContainer, entitlement_id: str) -> list[dict[str, Any]]:
    """Per window of one entitlement, oldest first: ingested sums, reported values, status.

    Windows with records but no ledger row yet show status `open`.
    """
    windows: dict[datetime, dict[str, Any]] = {}
    with container.sessions() as session:
        ingested = (
            sa.select(UsageRecord.window_start, UsageRecord.metric, sa.func.sum(UsageRecord.value))
            .where(UsageRecord.entitlement_id == entitlement_id)
            .group_by(UsageRecord.window_start, UsageRecord.metric)
        )
        for start, metric, total in session.execute(ingested):
            window = windows.setdefault(start, _empty_window(start))
            window["ingested"][metric] = f"{total.normalize():f}" if total else str(total)
        reports = sa.select(UsageReport).where(UsageReport.entitlement_id == entitlement_id)
        for report in session.scalars(reports):
            window = windows.setdefault(report.window_start, _empty_window(report.window_start))
            window.update(
                end=report.window_end,
                plan=report.plan,
                status=report.status,
                operation_id=report.operation_id,
                attempts=report.attempts,
                error=report.error,
                reported={
                    str(v["metric"]): str(v["value"])
                    for v in report.metric_values.values()
                    if isinstance(v, dict) and "type" in v
                },
            )
    return [windows[start] for start in sorted(windows)]


def _empty_window(start: datetime) -> dict[str, Any]:
    return {
        "start": start,
        "end": None,
        "plan": None,
        "status": "open",
        "operation_id": None,
        "attempts": 0,
        "error": None,
        "ingested": {},
        "reported": {},
    }


def pending_usage(container: MeteringContainer) -> dict[str, Any]:
    """What is not reported yet: unfinished ledger rows, and unreported records per entitlement."""
    with container.sessions() as session:
        unfinished = session.scalars(
            sa.select(UsageReport)
            .where(UsageReport.status.in_(("pending", "sent")))
            .order_by(UsageReport.window_start, UsageReport.entitlement_id)
        ).all()
        records = session.execute(
            sa.select(
                UsageRecord.entitlement_id,
                sa.func.count(),
                sa.func.min(UsageRecord.window_start),
            )
            .where(UsageRecord.operation_id.is_(None))
            .group_by(UsageRecord.entitlement_id)
            .order_by(UsageRecord.entitlement_id)
        ).all()
    return {
        "windows": [
            {
                "entitlement": r.entitlement_id,
                "start": r.window_start,
                "end": r.window_end,
                "plan": r.plan,
                "status": r.status,
                "attempts": r.attempts,
                "error": r.error,
                "operation_id": r.operation_id,
            }
            for r in unfinished
        ],
        "unreported_records": [
            {"entitlement": entitlement_id, "records": count, "oldest_window": oldest}
            for entitlement_id, count, oldest in records
        ],
    }
