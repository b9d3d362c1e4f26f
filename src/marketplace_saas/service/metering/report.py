"""The usage reporter: every due window, once, in order, through `services.check` and `.report`.

    report_usage(app, gateway=None, now=None, dry_run=False, progress=None) -> ReportSummary

1. Carry stray records of reported windows forward; close every window that ended before
   `now - USAGE_GRACE_SECONDS` into the ledger as `pending` (commit).
2. Send the unfinished ledger rows (`pending`, `sent`) in rounds: round k holds the k-th oldest
   unfinished window of each entitlement, so one entitlement's windows reach Google in time order.
   A `pending` row is checked first (no userLabels); when the check passes it is marked `sent`
   (commit) and reported, many operations per request under the 1 MB limit. A `sent` row is
   re-sent as it is, with the same operationId: Google may have recorded it before a crash.
3. Outcomes: `accepted`; `rejected` with Google's error (the next window still follows); or left
   `pending`/`sent` with the error, to retry on the next run. A window that cannot go out stops
   its entitlement's later windows for this run.

Check errors SERVICE_NOT_ACTIVATED, BILLING_DISABLED and PROJECT_DELETED turn the customer's
service off (audit row, `entitlement.suspended` hook); a later passing check turns it back on
(`entitlement.restored`). Outages never do.

Runs share the work by claims (`app.report_claims()`): entitlements are hashed into shards
(`domain.metering.shard_of`); a run claims each shard as it reaches it, skips one another run
holds, and closes and sends the claimed shard's windows before the next. A claim lasts until the
run ends or its process dies (PostgreSQL session advisory locks; on SQLite one file lock covers
every shard). A run that claims no shard, or loses the race to insert an operationId (a claim
lost with its connection), sends nothing of that shard and says so in `errors` (`ANOTHER_RUN`).
Windows are closed by `closing.py`; the customer's service is turned off and on by
`suspension.py`; the wire JSON of an operation is `adapters.servicecontrol.operation_json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from marketplace_saas.adapters.db.errors import IntegrityError
from marketplace_saas.adapters.servicecontrol import (
    ServiceControlApi,
    ServiceControlError,
    TransientServiceControlError,
    operation_json,
    report_error_is_transient,
)
from marketplace_saas.adapters.usage_catalog import load_catalog
from marketplace_saas.config import Settings
from marketplace_saas.domain.metering import ReportRow, shard_of
from marketplace_saas.domain.suspension import Verdict, check_verdict
from marketplace_saas.domain.time import format_rfc3339 as rfc3339
from marketplace_saas.service.metering import closing
from marketplace_saas.service.metering.suspension import maybe_restore, suspend
from marketplace_saas.service.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


class ReportingApp(Protocol):
    """What the reporter needs of the application (`bootstrap.Container`)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def servicecontrol(self) -> ServiceControlApi: ...
    def now(self) -> datetime: ...
    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]: ...
    def reading(self) -> AbstractContextManager[UnitOfWork]: ...
    def report_claims(self) -> AbstractContextManager[Claims]:
        """The run's claims on the reporter's shards, all released when the block ends."""


class Claims(Protocol):
    """Shards `0 .. shards - 1`; `take(k)` is True when this run now holds shard k."""

    @property
    def shards(self) -> int: ...
    def take(self, shard: int) -> bool: ...


ANOTHER_RUN = "another report-usage run is reporting these windows"
MAX_REPORT_BYTES = 900_000  # under Service Control's 1 MB request limit, with room to spare
CHECK_WORKERS = 8

Progress = Callable[[int, int], None]


@dataclass
class ReportSummary:
    now: datetime
    closed: int = 0  # windows written to the ledger in this run
    skipped: int = 0  # windows with nothing to send (no metrics, or zero and zeros not reported)
    accepted: int = 0
    rejected: int = 0
    retrying: int = 0  # left pending or sent, for the next run
    carried: int = 0
    stranded: int = 0
    suspended: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would be sent

    @property
    def failed(self) -> bool:
        return bool(self.rejected or self.retrying or self.stranded)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("now", "operations")}
        out["now"] = rfc3339(self.now)
        if self.operations:
            out["operations"] = self.operations
        return out


def report_usage(
    app: ReportingApp,
    *,
    gateway: ServiceControlApi | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    actor: str = "reporter",
) -> ReportSummary:
    """Close and send every due window; see the module docstring."""
    now = now or app.now()
    summary = ReportSummary(now=now)
    if dry_run:
        _close(app, summary, None, dry_run=True)
        return summary
    sender = _Sender(app, gateway or app.servicecontrol, summary, progress, actor)
    with app.reading() as uow:  # who may have work: metered, or with rows or records left
        usage = uow.usage
        metered = set(usage.metered_entitlements())
        work = metered | {r.entitlement_id for r in usage.unfinished()}
        work.update(entitlement_id for _, entitlement_id in usage.stray_records())
    with app.report_claims() as claims:
        shards: dict[int, set[str]] = {k: set() for k in range(claims.shards)}
        for entitlement_id in work:
            shards[shard_of(entitlement_id, claims.shards)].add(entitlement_id)
        busy = 0  # shards with work that another run holds (or took first: a lost claim)
        for shard, ids in shards.items():
            if not ids:
                continue
            if not claims.take(shard) or not _close(app, summary, (ids, metered), dry_run=False):
                busy += 1
                continue
            sender.run(ids)
    if busy:
        summary.errors.append({"error": ANOTHER_RUN})
        log.warning("usage.another_run", shards=busy)
    return summary


def _close(
    app: ReportingApp,
    summary: ReportSummary,
    shard: tuple[set[str], set[str]] | None,
    *,
    dry_run: bool,
) -> bool:
    """Step 1: write the due windows of a claimed shard to the ledger: `shard` is (the shard's
    entitlements, every metered entitlement). A dry run (`shard` None) lists what would be sent
    of every entitlement.

    False when another run wrote one of the same operationIds first (the unique constraint).
    """
    settings = app.settings
    horizon = summary.now - timedelta(seconds=settings.usage_grace_seconds)
    catalog = load_catalog(settings)
    carried = stranded = 0
    try:
        with app.unit_of_work() as uow:
            usage = uow.usage
            if shard is None:
                entitlements = usage.metered_entitlements()
            else:
                ids, metered = shard
                entitlements = usage.entitlements(ids & metered) if ids & metered else {}
            state = usage.ledger_state(entitlements)
            if not dry_run and shard is not None:
                carried, stranded = closing.carry_stray_records(
                    usage, entitlements, state, shard[0].__contains__
                )
            windows = closing.due_windows(entitlements.values(), state, catalog, horizon)
            if dry_run:
                closing.preview_sums(usage, windows)
            else:
                closing.stamp_and_sum(usage, windows)
            zero = settings.usage_report_zero
            rows = closing.ledger_rows(windows, state, report_zero=zero, now=summary.now)
            if not dry_run:
                usage.add_reports(rows)
            if dry_run:
                pending = usage.unfinished() + [r for r in rows if r.status == "pending"]
                summary.operations = [operation_json(r, for_report=True) for r in pending]
    except IntegrityError:  # another run wrote the same operationId first: it reports them
        return False
    if not dry_run:
        summary.carried += carried
        summary.stranded += stranded
    summary.closed += len(rows)
    summary.skipped += sum(1 for r in rows if r.status == "skipped")
    return True


class _Sender:
    def __init__(
        self,
        app: ReportingApp,
        gateway: ServiceControlApi,
        summary: ReportSummary,
        progress: Progress | None,
        actor: str,
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.summary = summary
        self.progress = progress
        self.actor = actor
        self.done = 0
        self.total = 0

    def run(self, owned: set[str]) -> None:
        """Send the unfinished rows of the entitlements `owned` (a claimed shard)."""
        with self.app.reading() as uow:
            rows = uow.usage.unfinished(owned)
        queues: dict[str, list[ReportRow]] = {}
        for row in rows:
            queues.setdefault(row.entitlement_id, []).append(row)
        self.total += len(rows)
        self._tick(0)
        with ThreadPoolExecutor(CHECK_WORKERS, thread_name_prefix="sc-check") as pool:
            while queues:
                round_rows = [queue.pop(0) for queue in queues.values()]
                blocked = self._round(round_rows, pool)
                for entitlement_id in list(queues):
                    if entitlement_id in blocked:
                        left = len(queues.pop(entitlement_id))
                        self.summary.retrying += left
                        self._tick(left)
                    elif not queues[entitlement_id]:
                        del queues[entitlement_id]
        self._tick(0)

    def _tick(self, finished: int) -> None:
        self.done += finished
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)

    # -- one round: check the pending rows, mark them sent, report ------------------------------

    def _round(self, rows: list[ReportRow], pool: ThreadPoolExecutor) -> set[str]:
        blocked: set[str] = set()
        to_check = [r for r in rows if r.status == "pending"]
        verdicts = list(pool.map(self._check, to_check))
        now = self.app.now()
        changes: list[dict[str, Any]] = []
        to_send = [r for r in rows if r.status == "sent"]
        with self.app.unit_of_work() as uow:
            for row, (verdict, detail) in zip(to_check, verdicts, strict=True):
                if verdict is Verdict.OK:
                    if maybe_restore(uow, row, now, actor=self.actor):
                        self.summary.restored.append(row.entitlement_id)
                    changes.append({"id": row.id, "status": "sent", "sent_at": now, "error": None})
                    row.status = "sent"
                    to_send.append(row)
                    continue
                if verdict is Verdict.SUSPEND and suspend(uow, row, detail, now, actor=self.actor):
                    self.summary.suspended.append(row.entitlement_id)
                if verdict is None:  # the check refused the operation itself: it cannot pass
                    changes.append(self._rejected(row, detail, now))
                    continue
                blocked.add(row.entitlement_id)
                self.summary.retrying += 1
                self.summary.errors.append(self._error(row, detail))
                changes.append({"id": row.id, "attempts": row.attempts + 1, "error": detail})
            uow.usage.update_reports(changes)
        self._tick(len(rows) - len(to_send))  # settled by the check; the rest after the report
        blocked |= self._report(to_send)
        return blocked

    def _check(self, row: ReportRow) -> tuple[Verdict | None, str | None]:
        try:
            answer = self.gateway.check(row.service, operation_json(row, for_report=False))
        except TransientServiceControlError as exc:
            return Verdict.RETRY, f"check: {exc}"
        except ServiceControlError as exc:
            return None, f"check: {exc}"
        verdict = check_verdict(answer.get("checkErrors") or [])
        detail = f"check: {verdict.code}: {verdict.detail}" if verdict.code else None
        return verdict.verdict, detail

    def _report(self, rows: list[ReportRow]) -> set[str]:
        blocked: set[str] = set()
        for batch in _batches(rows):
            outcomes = self._send(batch)
            now = self.app.now()
            changes = []
            for row in batch:
                outcome = outcomes.get(row.operation_id)
                if outcome is None:
                    self.summary.accepted += 1
                    changes.append(
                        {"id": row.id, "status": "accepted", "completed_at": now, "error": None}
                    )
                elif outcome[0]:  # transient: stays `sent`, re-sent as it is next run
                    blocked.add(row.entitlement_id)
                    self.summary.retrying += 1
                    self.summary.errors.append(self._error(row, outcome[1]))
                    changes.append(
                        {"id": row.id, "attempts": row.attempts + 1, "error": outcome[1]}
                    )
                else:
                    changes.append(self._rejected(row, outcome[1], now))
            with self.app.unit_of_work() as uow:
                uow.usage.update_reports(changes)
            self._tick(len(batch))
        return blocked

    def _send(self, batch: list[ReportRow]) -> dict[str, tuple[bool, str]]:
        """Report one batch: operationId -> (transient?, error) for every operation not accepted."""
        service = batch[0].service
        try:
            answer = self.gateway.report(
                service, [operation_json(r, for_report=True) for r in batch]
            )
        except TransientServiceControlError as exc:
            return {r.operation_id: (True, f"report: {exc}") for r in batch}
        except ServiceControlError as exc:
            if len(batch) == 1:
                return {batch[0].operation_id: (False, f"report: {exc}")}
            out: dict[str, tuple[bool, str]] = {}
            for row in batch:  # isolate the operation the whole request was refused for
                out.update(self._send([row]))
            return out
        errors = {}
        for error in answer.get("reportErrors") or []:
            status = error.get("status") or {}
            message = f"report: {status.get('code')}: {status.get('message', '')}"
            errors[str(error.get("operationId"))] = (report_error_is_transient(status), message)
        return errors

    # -- outcomes -------------------------------------------------------------------------------

    def _rejected(self, row: ReportRow, detail: str | None, now: datetime) -> dict[str, Any]:
        self.summary.rejected += 1
        self.summary.errors.append(self._error(row, detail))
        log.error("usage.rejected", entitlement_id=row.entitlement_id, error=detail)
        return {
            "id": row.id,
            "status": "rejected",
            "completed_at": now,
            "attempts": row.attempts + 1,
            "error": detail,
        }

    def _error(self, row: ReportRow, detail: str | None) -> dict[str, str]:
        return {
            "entitlement": row.entitlement_id,
            "window_start": rfc3339(row.window_start),
            "operation_id": row.operation_id,
            "error": detail or "",
        }


def _batches(rows: Sequence[ReportRow]) -> list[list[ReportRow]]:
    """Rows grouped by service into report requests under `MAX_REPORT_BYTES`."""
    out: list[list[ReportRow]] = []
    by_service: dict[str, list[ReportRow]] = {}
    for row in rows:
        by_service.setdefault(row.service, []).append(row)
    for service_rows in by_service.values():
        batch: list[ReportRow] = []
        size = 0
        for row in service_rows:
            cost = len(json.dumps(operation_json(row, for_report=True))) + 2
            if batch and size + cost > MAX_REPORT_BYTES:
                out.append(batch)
                batch, size = [], 0
            batch.append(row)
            size += cost
        if batch:
            out.append(batch)
    return out
