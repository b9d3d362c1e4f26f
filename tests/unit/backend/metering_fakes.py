"""In-memory metering for the use-case tests: the usage store and Service Control.

`FakeUsage` keeps what `adapters/db/usage_ledger.SqlUsage` keeps (records and the report ledger)
in lists, with the same rules: a repeated record id is skipped, a repeated operationId is refused.
It is `FakeStore.usage` and `FakeUnitOfWork.usage` (`fakes.py`); `FakeMeteringApp` in
`test_metering_rules.py` adds Service Control and the reporter's lock to `FakeApp`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from marketplace_saas.adapters.db.errors import IntegrityError
from marketplace_saas.domain.metering import (
    UNFINISHED,
    LedgerState,
    MeteredEntitlement,
    NewRecord,
    ReportRow,
    WindowKey,
    WindowUsage,
)


@dataclass
class StoredRecord:
    id: int
    record: NewRecord
    window_start: datetime
    operation_id: str | None = None


@dataclass
class FakeUsage:
    metered: dict[str, MeteredEntitlement] = field(default_factory=dict)
    records: list[StoredRecord] = field(default_factory=list)
    reports: list[ReportRow] = field(default_factory=list)

    # -- ingestion ------------------------------------------------------------------------------
    def entitlements(self, ids: Iterable[str]) -> dict[str, MeteredEntitlement]:
        return {i: self.metered[i] for i in set(ids) if i in self.metered}

    def reported_until(self, ids: Iterable[str]) -> dict[str, datetime]:
        wanted = set(ids)
        until: dict[str, datetime] = {}
        for r in self.reports:
            if r.entitlement_id in wanted:
                until[r.entitlement_id] = max(
                    until.get(r.entitlement_id, r.window_end), r.window_end
                )
        return until

    def insert_records(self, rows: Sequence[NewRecord]) -> int:
        known = {s.record.record_id for s in self.records}
        inserted = 0
        for row in rows:
            if row.record_id in known:
                continue
            known.add(row.record_id)
            self.records.append(StoredRecord(len(self.records) + 1, row, row.window_start))
            inserted += 1
        return inserted

    def existing_record_ids(self, ids: Iterable[str]) -> set[str]:
        return set(ids) & {s.record.record_id for s in self.records}

    # -- closing windows ------------------------------------------------------------------------
    def metered_entitlements(self) -> dict[str, MeteredEntitlement]:
        return {
            i: e for i, e in self.metered.items() if e.usage_reporting_id and e.timeline is not None
        }

    def ledger_state(self, ids: Iterable[str]) -> LedgerState:
        until = self.reported_until(ids)
        carry: dict[str, dict[str, Decimal]] = {}
        for r in self.reports:
            if until.get(r.entitlement_id) != r.window_end:
                continue
            carried = {
                v["metric"]: Decimal(v["carry_out"])
                for v in r.reported().values()
                if v.get("carry_out") not in (None, "0")
            }
            if carried:
                carry[r.entitlement_id] = carried
        return LedgerState(until, carry)

    def stray_records(self) -> list[tuple[int, str]]:
        closed = {(r.entitlement_id, r.window_start) for r in self.reports}
        return [
            (s.id, s.record.entitlement_id)
            for s in self.records
            if s.operation_id is None and (s.record.entitlement_id, s.window_start) in closed
        ]

    def move_records(self, moves: Mapping[datetime, Sequence[int]]) -> None:
        for start, ids in moves.items():
            for s in self.records:
                if s.id in ids:
                    s.window_start = start

    def stamp_and_sum(self, windows: Sequence[WindowKey]) -> dict[str, WindowUsage]:
        found: dict[str, WindowUsage] = {}
        for w in windows:
            for s in self.records:
                if (
                    s.operation_id is None
                    and s.record.entitlement_id == w.entitlement_id
                    and s.window_start == w.window_start
                ):
                    s.operation_id = w.operation_id
        for s in self.records:
            if s.operation_id in {w.operation_id for w in windows}:
                usage = found.setdefault(s.operation_id, WindowUsage())
                metric = s.record.metric
                usage.sums[metric] = usage.sums.get(metric, Decimal(0)) + s.record.value
                if s.record.labels not in usage.label_sets:
                    usage.label_sets.append(s.record.labels)
        return found

    def preview_sums(
        self, entitlement_ids: Iterable[str]
    ) -> dict[tuple[str, datetime], dict[str, Decimal]]:
        wanted = set(entitlement_ids)
        found: dict[tuple[str, datetime], dict[str, Decimal]] = {}
        for s in self.records:
            if s.operation_id is None and s.record.entitlement_id in wanted:
                sums = found.setdefault((s.record.entitlement_id, s.window_start), {})
                sums[s.record.metric] = sums.get(s.record.metric, Decimal(0)) + s.record.value
        return found

    def add_reports(self, rows: Sequence[ReportRow]) -> None:
        known = {r.operation_id for r in self.reports}
        for row in rows:
            if row.operation_id in known:
                raise IntegrityError("INSERT usage_reports", {}, Exception("duplicate operation"))
            known.add(row.operation_id)
            self.reports.append(replace(row, id=len(self.reports) + 1))

    # -- sending --------------------------------------------------------------------------------
    def unfinished(self, of: Iterable[str] | None = None) -> list[ReportRow]:
        wanted = None if of is None else set(of)
        rows = [
            replace(r)
            for r in self.reports
            if r.status in UNFINISHED and (wanted is None or r.entitlement_id in wanted)
        ]
        return sorted(rows, key=lambda r: (r.window_start, r.entitlement_id))

    def update_reports(self, changes: Sequence[dict[str, Any]]) -> None:
        by_id = {r.id: r for r in self.reports}
        for change in changes:
            row = by_id[change["id"]]
            for key, value in change.items():
                if key != "id" and hasattr(row, key):
                    setattr(row, key, value)

    # -- what is reported -----------------------------------------------------------------------
    def reports_of(self, entitlement_id: str) -> list[ReportRow]:
        return [replace(r) for r in self.reports if r.entitlement_id == entitlement_id]

    def ingested(self, entitlement_id: str) -> list[tuple[datetime, str, Decimal]]:
        sums: dict[tuple[datetime, str], Decimal] = {}
        for s in self.records:
            if s.record.entitlement_id == entitlement_id:
                key = (s.window_start, s.record.metric)
                sums[key] = sums.get(key, Decimal(0)) + s.record.value
        return [(start, metric, total) for (start, metric), total in sums.items()]

    def unreported_records(self) -> list[tuple[str, int, datetime]]:
        out: dict[str, tuple[int, datetime]] = {}
        for s in self.records:
            if s.operation_id is None:
                count, oldest = out.get(s.record.entitlement_id, (0, s.window_start))
                out[s.record.entitlement_id] = (count + 1, min(oldest, s.window_start))
        return [(e, n, oldest) for e, (n, oldest) in sorted(out.items())]


class FakeServiceControl:
    """Answers every check and report with success, or with the answers queued per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[dict[str, Any]]]] = []  # (method, service, ops)
        self.check_answers: list[dict[str, Any] | Exception] = []
        self.report_answers: list[dict[str, Any] | Exception] = []
        self._lock = threading.Lock()

    def check(self, service_name: str, operation: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("check", service_name, [operation]))
            answer = self.check_answers.pop(0) if self.check_answers else {}
        if isinstance(answer, Exception):
            raise answer
        return answer

    def report(self, service_name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("report", service_name, operations))
            answer = self.report_answers.pop(0) if self.report_answers else {}
        if isinstance(answer, Exception):
            raise answer
        return answer

    def reported_ids(self) -> list[str]:
        """The operationIds of every operation reported, in order (repeats included)."""
        return [
            op["operationId"] for method, _, ops in self.calls if method == "report" for op in ops
        ]
