"""Metering's use cases on in-memory fakes (no database): ingest, windows, check then report.

The same rules the integration tests pin against SQLite and PostgreSQL, here in milliseconds:
records are counted once, each joins one window, a window is closed once under its
deterministic operationId, checked before it is reported, and never reported twice.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from marketplace_saas.adapters.servicecontrol import TransientServiceControlError
from marketplace_saas.domain.metering import MeteredEntitlement
from marketplace_saas.domain.usage import Timeline, floor_hour, operation_id
from marketplace_saas.service.metering.history import pending_usage, usage_history
from marketplace_saas.service.metering.ingest import record_usage
from marketplace_saas.service.metering.report import ANOTHER_RUN, report_usage
from tests.unit.backend.fakes import ENTITLEMENT_COLUMNS, FakeApp
from tests.unit.backend.metering_fakes import FakeServiceControl, FakeUsage

H = timedelta(hours=1)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # the entitlement's first hour
SERVICE = "example-product.endpoints.sandbox.cloud.goog"
REQUESTS = f"{SERVICE}/basic_requests"


class FakeMeteringApp(FakeApp):
    """`FakeApp` with Service Control and the reporter's lock (one run at a time)."""

    def __init__(self, now: datetime, **settings: Any) -> None:
        super().__init__(usage_grace_seconds=60, **settings)
        self.clock = now
        self.servicecontrol = FakeServiceControl()
        self._reporting = threading.Lock()

    @property
    def usage(self) -> FakeUsage:
        """The usage store as it stands (a unit of work may have replaced the object)."""
        return self.store.usage

    @contextlib.contextmanager
    def report_claims(self) -> Iterator[WholeClaim]:
        """One shard, held by one run at a time (as a SQLite file's reporters share it)."""
        claim = WholeClaim(self._reporting)
        try:
            yield claim
        finally:
            if claim.held:
                self._reporting.release()


class WholeClaim:
    shards = 1

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.held = False

    def take(self, shard: int) -> bool:
        self.held = self.lock.acquire(blocking=False)
        return self.held


def _app(now: datetime = T0 + 3 * H + timedelta(minutes=5), **env: Any) -> FakeMeteringApp:
    """Entitlement e1 (basic) active since T0; empty windows are closed as `skipped` (not sent)
    so that each test sees only the windows it fills."""
    app = FakeMeteringApp(now, **{"usage_report_zero": False, **env})
    app.usage.metered["e1"] = MeteredEntitlement(
        id="e1",
        product="example-product",
        product_external_name=None,
        plan="basic",
        usage_reporting_id="project_number:123",
        service_enabled=True,
        service_suspended_reason=None,
        timeline=Timeline.build(active_since=T0, cancelled_at=None, current_plan="basic"),
    )
    return app


def _record(record_id: str, at: datetime, value: object = 5, **fields: Any) -> dict[str, Any]:
    return {
        "id": record_id,
        "entitlement": "e1",
        "metric": "requests",
        "value": value,
        "time": at.isoformat(),
        **fields,
    }


def test_a_batch_counts_accepted_duplicates_and_refusals_with_a_reason() -> None:
    app = _app()
    first = record_usage(
        app,
        [
            _record("a", T0 + timedelta(minutes=1)),
            _record("a", T0 + timedelta(minutes=2)),  # the same id twice in one batch
            _record("b", T0 + timedelta(minutes=3), entitlement="nobody"),
            _record("c", T0 + timedelta(minutes=4), metric="coffee"),
        ],
    )
    again = record_usage(app, [_record("a", T0 + timedelta(minutes=1))])

    assert (first.accepted, first.duplicates) == (1, 1)
    assert [r.id for r in first.rejected] == ["b", "c"]
    assert "unknown entitlement" in first.rejected[0].reason
    assert "unknown metric 'coffee'" in first.rejected[1].reason
    assert (again.accepted, again.duplicates, again.rejected) == (0, 1, [])
    assert len(app.usage.records) == 1


def test_each_record_joins_the_window_of_its_hour() -> None:
    app = _app()
    at = T0 + H + timedelta(minutes=42, seconds=7)
    record_usage(app, [_record("a", at)])

    assert app.usage.records[0].window_start == floor_hour(at) == T0 + H


def test_a_late_record_joins_the_first_window_not_yet_reported() -> None:
    app = _app()
    record_usage(app, [_record("a", T0 + timedelta(minutes=1))])
    report_usage(app)  # closes 10:00, 11:00 and 12:00
    app.clock += H
    late = record_usage(app, [_record("late", T0 + timedelta(minutes=30))])

    assert late.accepted == 1
    stored = app.usage.records[-1]
    assert stored.window_start == T0 + 3 * H  # the first window after the ledger's end
    assert stored.record.time == T0 + timedelta(minutes=30)  # it keeps its own time


def test_a_late_record_is_refused_under_the_reject_policy() -> None:
    app = _app(usage_late_policy="reject")
    record_usage(app, [_record("a", T0 + timedelta(minutes=1))])
    report_usage(app)
    late = record_usage(app, [_record("late", T0 + timedelta(minutes=30))])

    assert late.accepted == 0
    assert late.rejected[0].reason.startswith("late: the window starting")


def test_a_run_closes_every_ended_window_once_under_its_deterministic_operation_id() -> None:
    app = _app()
    record_usage(app, [_record("a", T0 + timedelta(minutes=1), 7)])
    summary = report_usage(app)

    ledger = app.usage.reports
    assert [(r.window_start, r.window_end) for r in ledger] == [
        (T0, T0 + H),
        (T0 + H, T0 + 2 * H),
        (T0 + 2 * H, T0 + 3 * H),  # 13:00-14:00 has not ended: not closed
    ]
    assert [r.operation_id for r in ledger] == [
        operation_id("e1", T0 + k * H, "basic") for k in range(3)
    ]
    assert summary.closed == 3
    assert summary.skipped == 2
    assert ledger[0].status == "accepted"
    assert ledger[0].reported()[REQUESTS]["value"] == "7"
    assert {r.status for r in ledger[1:]} == {"skipped"}


def test_a_window_is_checked_before_it_is_reported_and_the_check_carries_no_labels() -> None:
    app = _app()
    record_usage(app, [_record("a", T0 + timedelta(minutes=1), labels={"team": "blue"})])
    report_usage(app)

    calls = app.servicecontrol.calls
    assert [method for method, _, _ in calls] == ["check", "report"]
    check, report = calls[0][2][0], calls[1][2][0]
    assert check["operationId"] == report["operationId"] == operation_id("e1", T0, "basic")
    assert "userLabels" not in check
    assert report["userLabels"] == {"team": "blue"}
    assert report["startTime"] == "2026-03-02T10:00:00Z"
    assert report["metricValueSets"] == [
        {"metricName": REQUESTS, "metricValues": [{"int64Value": "5"}]},
        {"metricName": f"{SERVICE}/basic_storage_gb", "metricValues": [{"int64Value": "0"}]},
    ]


def test_a_second_run_reports_nothing_again() -> None:
    app = _app()
    record_usage(app, [_record("a", T0 + timedelta(minutes=1))])
    report_usage(app)
    again = report_usage(app)

    assert (again.closed, again.accepted, again.errors) == (0, 0, [])
    assert app.servicecontrol.reported_ids() == [operation_id("e1", T0, "basic")]


def test_a_report_lost_to_an_outage_is_resent_with_the_same_operation_id() -> None:
    app = _app()
    record_usage(app, [_record("a", T0 + timedelta(minutes=1))])
    app.servicecontrol.report_answers.append(TransientServiceControlError("unavailable"))
    first = report_usage(app)
    second = report_usage(app)

    op = operation_id("e1", T0, "basic")
    assert (first.retrying, first.failed) == (1, True)
    assert (second.accepted, second.closed) == (1, 0)
    assert app.servicecontrol.reported_ids() == [op, op]  # the same bytes under the same id
    assert [m for m, _, _ in app.servicecontrol.calls] == ["check", "report", "report"]
    assert app.usage.reports[0].status == "accepted"


def test_whole_units_are_reported_and_the_fraction_carries_into_the_next_window() -> None:
    app = _app()
    record_usage(
        app,
        [
            _record("a", T0 + timedelta(minutes=1), "1.75"),
            _record("b", T0 + H + timedelta(minutes=1), "0.5"),
        ],
    )
    report_usage(app)

    first, second = app.usage.reports[:2]
    assert first.reported()[REQUESTS]["value"] == "1"
    assert first.reported()[REQUESTS]["carry_out"] == "0.75"
    assert Decimal(second.reported()[REQUESTS]["sum"]) == Decimal("1.25")
    assert second.reported()[REQUESTS]["value"] == "1"


def test_a_dry_run_lists_what_would_be_sent_and_changes_nothing() -> None:
    app = _app()
    record_usage(app, [_record("a", T0 + timedelta(minutes=1))])
    summary = report_usage(app, dry_run=True)

    assert [op["operationId"] for op in summary.operations] == [operation_id("e1", T0, "basic")]
    assert app.usage.reports == []
    assert app.servicecontrol.calls == []
    assert app.usage.records[0].operation_id is None


def test_a_run_that_finds_another_one_reporting_sends_nothing() -> None:
    app = _app()
    record_usage(app, [_record("a", T0 + timedelta(minutes=1))])
    with app.report_claims() as claims:
        assert claims.take(0)
        summary = report_usage(app)

    assert summary.errors == [{"error": ANOTHER_RUN}]
    assert app.usage.reports == []
    assert app.servicecontrol.calls == []


def test_history_and_pending_show_windows_ingested_and_reported() -> None:
    app = _app()
    record_usage(app, [_record("a", T0 + timedelta(minutes=1), 3)])
    app.servicecontrol.report_answers.append(TransientServiceControlError("unavailable"))
    report_usage(app)
    record_usage(app, [_record("b", T0 + 3 * H + timedelta(minutes=1), 2)])

    history = usage_history(app, "e1")
    pending = pending_usage(app)
    assert [(w["start"], w["status"]) for w in history] == [
        (T0, "sent"),
        (T0 + H, "skipped"),
        (T0 + 2 * H, "skipped"),
        (T0 + 3 * H, "open"),
    ]
    assert history[0]["ingested"] == {"requests": "3"}
    assert [w["status"] for w in pending["windows"]] == ["sent"]
    assert pending["unreported_records"] == [
        {"entitlement": "e1", "records": 1, "oldest_window": T0 + 3 * H}
    ]


@pytest.mark.parametrize("minute", [0, 59])
def test_the_operation_id_depends_on_the_window_not_on_the_moment_inside_it(minute: int) -> None:
    app = _app()
    record_usage(app, [_record("a", T0 + timedelta(minutes=minute))])
    report_usage(app)

    assert app.servicecontrol.reported_ids() == [operation_id("e1", T0, "basic")]


def test_empty_windows_are_reported_as_zero_by_default() -> None:
    app = _app(usage_report_zero=True)
    summary = report_usage(app)

    assert (summary.closed, summary.skipped, summary.accepted) == (3, 0, 3)
    assert [r.reported()[REQUESTS]["value"] for r in app.usage.reports] == ["0", "0", "0"]
    assert [r.status for r in app.usage.reports] == ["accepted"] * 3


def test_a_billing_disabled_check_turns_the_service_off_and_a_later_pass_turns_it_on() -> None:
    app = _app()
    app.store.entitlements["e1"] = {
        **dict.fromkeys(ENTITLEMENT_COLUMNS),
        "id": "e1",
        "account_id": "a1",
        "state": "ENTITLEMENT_ACTIVE",
        "plan": "basic",
        "service_enabled": True,
    }
    record_usage(app, [_record("a", T0 + timedelta(minutes=1))])
    app.servicecontrol.check_answers.append(
        {"checkErrors": [{"code": "BILLING_DISABLED", "detail": "billing off"}]}
    )
    off = report_usage(app)
    row = app.store.entitlements["e1"]
    assert (off.suspended, off.retrying) == (["e1"], 1)
    assert (row["service_enabled"], row["service_suspended_reason"]) == (
        False,
        "servicecontrol:BILLING_DISABLED",
    )
    assert [c["details"]["code"] for c in app.store.changes("usage.service_suspended")] == [
        "BILLING_DISABLED"
    ]

    on = report_usage(app)  # the next check passes
    row = app.store.entitlements["e1"]
    assert (on.restored, on.accepted) == (["e1"], 1)
    assert (row["service_enabled"], row["service_suspended_reason"]) == (True, None)
    assert sorted(item["hook"] for item in app.store.outbox.values()) == [
        "entitlement.restored",
        "entitlement.suspended",
    ]
