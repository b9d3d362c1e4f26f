"""What was ingested and what was reported (`usage show`, `usage pending`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marketplace_saas.service.metering.ports import MeteringApp


def usage_history(app: MeteringApp, entitlement_id: str) -> list[dict[str, Any]]:
    """Per window of one entitlement, oldest first: ingested sums, reported values, status.

    Windows with records but no ledger row yet show status `open`.
    """
    windows: dict[datetime, dict[str, Any]] = {}
    with app.reading() as uow:
        for start, metric, total in uow.usage.ingested(entitlement_id):
            window = windows.setdefault(start, _empty_window(start))
            window["ingested"][metric] = f"{total.normalize():f}" if total else str(total)
        for report in uow.usage.reports_of(entitlement_id):
            window = windows.setdefault(report.window_start, _empty_window(report.window_start))
            window.update(
                end=report.window_end,
                plan=report.plan,
                status=report.status,
                operation_id=report.operation_id,
                attempts=report.attempts,
                error=report.error,
                reported={str(v["metric"]): str(v["value"]) for v in report.reported().values()},
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


def pending_usage(app: MeteringApp) -> dict[str, Any]:
    """What is not reported yet: unfinished ledger rows, and unreported records per entitlement."""
    with app.reading() as uow:
        unfinished = uow.usage.unfinished()
        records = uow.usage.unreported_records()
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
