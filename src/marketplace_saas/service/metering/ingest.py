"""Usage ingestion: `record_usage(container, records)`, the Python API behind `POST /v1/usage`.

Each record is `{id, entitlement, metric, value, time, labels}`; `id` is the caller's idempotency
key. A batch is checked record by record (each refusal has a reason), then every accepted record
is written in one transaction with insert-on-conflict-do-nothing: a repeated `id`, in the batch or
already stored (even by a concurrent request), is a duplicate, never counted twice.

Each record joins the window (entitlement, hour, plan) holding its time, or, when that window
was already reported, the first one not yet reported (`placement.py`). The reporter is
`report.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import structlog

from marketplace_saas.adapters.usage_catalog import UsageCatalog, load_catalog
from marketplace_saas.domain.metering import NewRecord
from marketplace_saas.domain.text import is_storable
from marketplace_saas.domain.usage import UsageError, parse_labels, parse_time, parse_value
from marketplace_saas.service.metering.placement import Placement
from marketplace_saas.service.metering.ports import MeteringApp, UsageRepository

log = structlog.get_logger(__name__)

MAX_SKEW = timedelta(minutes=5)  # how far in the future a record's time may be (clock skew)
MAX_ID_LENGTH = 200


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
    if not is_storable(value):
        raise UsageError(f"{key} is not valid text (it holds a lone surrogate or a NUL)")
    return value


def _parse(record: object, now: datetime) -> _Parsed:
    if type(record) is not dict and not isinstance(record, Mapping):  # a dict: no ABC check
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
        given = str(record["id"])[:MAX_ID_LENGTH]
        return given if is_storable(given) else None
    return None


def record_usage(
    app: MeteringApp, records: Sequence[object], *, source: str = "api"
) -> IngestResult:
    """Validate and store a batch of usage records; the counts and each refusal's reason."""
    settings = app.settings
    now = app.now()
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
    with app.unit_of_work() as uow:
        placement = _placement(uow.usage, parsed, catalog, settings.usage_late_policy)
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
        inserted = uow.usage.insert_records(rows)
        # A retry of a record stored earlier is a duplicate even if it would be refused now
        # (its window has since been reported, say).
        stored = uow.usage.existing_record_ids([r.id for r in refused if r.id])
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
    usage: UsageRepository, parsed: Iterable[_Parsed], catalog: UsageCatalog, late_policy: str
) -> Placement:
    ids = {item.entitlement for item in parsed}
    entitlements = usage.entitlements(ids)
    until = usage.reported_until(entitlements)
    return Placement(entitlements, until, catalog, late_policy)
