"""The usage reporter: every due window, once, in order, through `services.check` and `.report`.

    report_usage(container, now=None, dry_run=False, progress=None) -> ReportSummary

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

One run at a time (`metering_ledger.run_lock`): a run that finds another one reporting, or loses
the race to insert the same operationId, sends nothing and says so in `errors` (`ANOTHER_RUN`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db import usage_store
from marketplace_saas.adapters.db.models import Entitlement, UsageReport
from marketplace_saas.adapters.db.unit_of_work import SqlUnitOfWork
from marketplace_saas.adapters.servicecontrol import (
    ServiceControlApi,
    ServiceControlError,
    TransientServiceControlError,
    Verdict,
    check_verdict,
    report_error_is_transient,
)
from marketplace_saas.adapters.usage_catalog import load_catalog
from marketplace_saas.service import metering_ledger as ledger
from marketplace_saas.service.audit import record_change
from marketplace_saas.service.metering import MeteringContainer
from marketplace_saas.service.metering_ledger import (
    ANOTHER_RUN,
    operation_json,
    rfc3339,
    service_of,
)
from marketplace_saas.service.outbox import enqueue_hook

log = structlog.get_logger(__name__)

MAX_REPORT_BYTES = 900_000  # under Service Control's 1 MB request limit, with room to spare
CHECK_WORKERS = 8
SUSPENDED_PREFIX = "servicecontrol:"

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
    container: MeteringContainer,
    *,
    gateway: ServiceControlApi | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    actor: str = "reporter",
) -> ReportSummary:
    """Close and send every due window; see the module docstring."""
    now = now or container.now()
    summary = ReportSummary(now=now)
    if dry_run:
        _close(container, summary, dry_run=True)
        return summary
    with ledger.run_lock(container.engine) as mine:
        if not mine or not _close(container, summary, dry_run=False):
            summary.errors.append({"error": ANOTHER_RUN})
            log.warning("usage.another_run")
            return summary
        _Sender(container, gateway or container_gateway(container), summary, progress, actor).run()
    return summary


def _close(container: MeteringContainer, summary: ReportSummary, *, dry_run: bool) -> bool:
    """Step 1: write the due windows to the ledger (a dry run lists what would be sent).

    False when another run wrote one of the same operationIds first (the unique constraint).
    """
    settings = container.settings
    horizon = summary.now - timedelta(seconds=settings.usage_grace_seconds)
    catalog = load_catalog(settings)
    try:
        with container.sessions.begin() as session:
            entitlements = usage_store.load_metered_entitlements(session)
            state = ledger.ledger_state(session, entitlements)
            if not dry_run:
                summary.carried, summary.stranded = ledger.carry_stray_records(
                    session, entitlements, state
                )
            windows = ledger.due_windows(entitlements.values(), state, catalog, horizon)
            if dry_run:
                ledger.preview_sums(session, windows)
            else:
                ledger.stamp_and_sum(session, windows)
            zero = settings.usage_report_zero
            rows = ledger.ledger_rows(windows, state, report_zero=zero, now=summary.now)
            if not dry_run:
                ledger.insert_ledger_rows(session, rows)
            if dry_run:
                pending = ledger.unfinished(session) + [
                    UsageReport(**r) for r in rows if r["status"] == "pending"
                ]
                summary.operations = [operation_json(r, for_report=True) for r in pending]
    except IntegrityError:  # another run wrote the same operationId first: it reports them
        summary.carried = summary.stranded = 0
        return False
    summary.closed = len(rows)
    summary.skipped = sum(1 for r in rows if r["status"] == "skipped")
    return True


def container_gateway(container: MeteringContainer) -> ServiceControlApi:
    gateway = getattr(container, "servicecontrol", None)
    if gateway is None:
        from marketplace_saas.adapters.servicecontrol import ServiceControlGateway

        gateway = ServiceControlGateway(container.settings)
    return gateway


class _Sender:
    def __init__(
        self,
        container: MeteringContainer,
        gateway: ServiceControlApi,
        summary: ReportSummary,
        progress: Progress | None,
        actor: str,
    ) -> None:
        self.container = container
        self.gateway = gateway
        self.summary = summary
        self.progress = progress
        self.actor = actor
        self.done = 0
        self.total = 0

    def run(self) -> None:
        with self.container.sessions() as session:
            rows = ledger.unfinished(session)
        queues: dict[str, list[UsageReport]] = {}
        for row in rows:
            queues.setdefault(row.entitlement_id, []).append(row)
        self.total = len(rows)
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

    def _round(self, rows: list[UsageReport], pool: ThreadPoolExecutor) -> set[str]:
        blocked: set[str] = set()
        to_check = [r for r in rows if r.status == "pending"]
        verdicts = list(pool.map(self._check, to_check))
        now = self.container.now()
        changes: list[dict[str, Any]] = []
        to_send = [r for r in rows if r.status == "sent"]
        with self.container.sessions.begin() as session:
            for row, (verdict, detail) in zip(to_check, verdicts, strict=True):
                if verdict is Verdict.OK:
                    self._maybe_restore(session, row, now)
                    changes.append({"id": row.id, "status": "sent", "sent_at": now, "error": None})
                    row.status = "sent"
                    to_send.append(row)
                    continue
                if verdict is Verdict.SUSPEND:
                    self._suspend(session, row, detail, now)
                if verdict is None:  # the check refused the operation itself: it cannot pass
                    changes.append(self._rejected(row, detail, now))
                    continue
                blocked.add(row.entitlement_id)
                self.summary.retrying += 1
                self.summary.errors.append(self._error(row, detail))
                changes.append({"id": row.id, "attempts": row.attempts + 1, "error": detail})
            ledger.update_rows(session, changes)
        self._tick(len(rows) - len(to_send))  # settled by the check; the rest after the report
        blocked |= self._report(to_send)
        return blocked

    def _check(self, row: UsageReport) -> tuple[Verdict | None, str | None]:
        try:
            answer = self.gateway.check(service_of(row), operation_json(row, for_report=False))
        except TransientServiceControlError as exc:
            return Verdict.RETRY, f"check: {exc}"
        except ServiceControlError as exc:
            return None, f"check: {exc}"
        verdict = check_verdict(answer.get("checkErrors") or [])
        detail = f"check: {verdict.code}: {verdict.detail}" if verdict.code else None
        return verdict.verdict, detail

    def _report(self, rows: list[UsageReport]) -> set[str]:
        blocked: set[str] = set()
        for batch in _batches(rows):
            outcomes = self._send(batch)
            now = self.container.now()
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
            with self.container.sessions.begin() as session:
                ledger.update_rows(session, changes)
            self._tick(len(batch))
        return blocked

    def _send(self, batch: list[UsageReport]) -> dict[str, tuple[bool, str]]:
        """Report one batch: operationId -> (transient?, error) for every operation not accepted."""
        service = service_of(batch[0])
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

    def _rejected(self, row: UsageReport, detail: str | None, now: datetime) -> dict[str, Any]:
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

    def _error(self, row: UsageReport, detail: str | None) -> dict[str, str]:
        return {
            "entitlement": row.entitlement_id,
            "window_start": rfc3339(row.window_start),
            "operation_id": row.operation_id,
            "error": detail or "",
        }

    def _suspend(
        self, session: Session, row: UsageReport, detail: str | None, now: datetime
    ) -> None:
        entitlement = session.get(Entitlement, row.entitlement_id)
        code = (detail or "").removeprefix("check: ").split(":", 1)[0]
        reason = f"{SUSPENDED_PREFIX}{code}"
        if entitlement is None or entitlement.service_suspended_reason == reason:
            return
        entitlement.service_enabled = False
        entitlement.service_suspended_reason = reason
        record_change(
            SqlUnitOfWork(session),
            "usage.service_suspended",
            actor=self.actor,
            at=now,
            account_id=entitlement.account_id,
            entitlement_id=entitlement.id,
            details={"code": code, "detail": detail, "operation_id": row.operation_id},
        )
        enqueue_hook(
            SqlUnitOfWork(session),
            "entitlement.suspended",
            ordering_key=entitlement.id,
            idempotency_key=f"usage-suspended:{entitlement.id}:{row.operation_id}:{row.attempts}",
            payload={"entitlement": entitlement.id, "reason": reason, "detail": detail},
        )
        self.summary.suspended.append(entitlement.id)
        log.warning("usage.service_suspended", entitlement_id=entitlement.id, code=code)

    def _maybe_restore(self, session: Session, row: UsageReport, now: datetime) -> None:
        entitlement = session.get(Entitlement, row.entitlement_id)
        reason = entitlement.service_suspended_reason if entitlement else None
        if entitlement is None or not (reason or "").startswith(SUSPENDED_PREFIX):
            return
        entitlement.service_enabled = True
        entitlement.service_suspended_reason = None
        record_change(
            SqlUnitOfWork(session),
            "usage.service_restored",
            actor=self.actor,
            at=now,
            account_id=entitlement.account_id,
            entitlement_id=entitlement.id,
            details={"previous_reason": reason, "operation_id": row.operation_id},
        )
        enqueue_hook(
            SqlUnitOfWork(session),
            "entitlement.restored",
            ordering_key=entitlement.id,
            idempotency_key=f"usage-restored:{entitlement.id}:{row.operation_id}",
            payload={"entitlement": entitlement.id, "previous_reason": reason},
        )
        self.summary.restored.append(entitlement.id)
        log.info("usage.service_restored", entitlement_id=entitlement.id)


def _batches(rows: Sequence[UsageReport]) -> list[list[UsageReport]]:
    """Rows grouped by service into report requests under `MAX_REPORT_BYTES`."""
    out: list[list[UsageReport]] = []
    by_service: dict[str, list[UsageReport]] = {}
    for row in rows:
        by_service.setdefault(service_of(row), []).append(row)
    for service_rows in by_service.values():
        batch: list[UsageReport] = []
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
