"""`serve`'s scheduler logs what a job did as fields, never as a Python repr (issue 12, item 15)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from structlog.testing import capture_logs

from marketplace_saas.entrypoints.jobs import Job
from marketplace_saas.entrypoints.scheduler import Scheduler
from marketplace_saas.service.procurement.reconcile import SyncResult


@dataclass
class Summary:
    now: datetime
    closed: int
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "closed": self.closed, "errors": self.errors}


def run_job(result: object) -> dict[str, Any]:
    scheduler = Scheduler(container=None, jobs=[Job("usage", 0, lambda _c: result)])  # type: ignore[arg-type]
    with capture_logs() as logs:
        scheduler.run_once(scheduler.jobs[0])
    [entry] = [e for e in logs if e["event"] == "job.finished"]
    return entry


def test_a_report_summary_is_logged_as_fields() -> None:
    """`now=2025-... closed=2 errors=1`, not `result='ReportSummary(now=datetime.datetime(...'`."""
    entry = run_job(Summary(datetime(2025, 3, 1, tzinfo=UTC), 2, ["x"]))
    assert entry["now"] == "2025-03-01T00:00:00+00:00"
    assert entry["closed"] == 2
    assert entry["errors"] == 1
    assert "result" not in entry
    assert not any("datetime.datetime(" in str(value) for value in entry.values())


def test_a_sync_result_dataclass_is_logged_as_fields() -> None:
    """Counts stay numbers; lists (decisions, errors) become their length."""
    entry = run_job(SyncResult(accounts_seen=3, decisions=["a", "b"]))
    assert entry["accounts_seen"] == 3
    assert entry["decisions"] == 2
    assert entry["errors"] == 0
    assert "SyncResult(" not in repr(entry)
