"""Usage ingestion through the Python API (`record_usage`), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db.models import UsageRecord, UsageReport
from marketplace_saas.bootstrap import Container
from marketplace_saas.domain.metering import NewRecord
from marketplace_saas.service.metering.ingest import record_usage
from tests.support.metering import (
    T0,
    FixedClock,
    SeededEntitlement,
    metering_container,
    seed_entitlements,
)

H = timedelta(hours=1)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def rec(
    rid: str,
    *,
    ent: str = "ent-1",
    metric: str = "requests",
    value: Any = 1,
    time: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {"id": rid, "entitlement": ent, "metric": metric, "value": value}
    if time is not None:
        record["time"] = iso(time)
    return {**record, **extra}


@pytest.fixture
def container(migrated_database_url: str) -> Any:
    c = metering_container(migrated_database_url, clock=FixedClock(T0 + 10 * H))
    with c.sessions.begin() as session:
        seed_entitlements(
            session,
            [
                SeededEntitlement("ent-1", "basic", T0 + timedelta(minutes=20), "project_number:1"),
                SeededEntitlement(
                    "ent-2",
                    "basic",
                    T0,
                    "project_number:2",
                    changes=[(T0 + 3 * H + timedelta(minutes=30), "pro")],
                    cancelled_at=T0 + 6 * H,
                ),
                SeededEntitlement("flat", "basic", T0, None),
            ],
        )
    yield c
    c.close()


def stored(container: Container) -> dict[str, UsageRecord]:
    with container.sessions() as session:
        return {r.record_id: r for r in session.scalars(sa.select(UsageRecord))}


def test_accepted_records_are_stored_in_the_hour_window_of_their_time(container: Any) -> None:
    result = record_usage(
        container,
        [
            rec("a", time=T0 + 2 * H + timedelta(minutes=5), value=Decimal("2.5")),
            rec("b", metric="storage_gb", labels={"resource_name": "db-1"}),
            rec("c", time=T0 + timedelta(minutes=25)),
        ],
    )
    assert result.to_json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    rows = stored(container)
    assert rows["a"].window_start == T0 + 2 * H
    assert rows["a"].value == Decimal("2.5")
    assert rows["b"].time == T0 + 10 * H  # no time given: now
    assert rows["b"].labels == {"resource_name": "db-1"}
    assert rows["c"].window_start == T0 + timedelta(
        minutes=20
    )  # the first window starts at activation


def test_a_repeated_id_is_a_duplicate_in_the_batch_and_across_batches(container: Any) -> None:
    first = record_usage(container, [rec("x", value=5), rec("x", value=5), rec("y")])
    assert (first.accepted, first.duplicates) == (2, 1)
    again = record_usage(container, [rec("x", value=7), rec("z")])
    assert (again.accepted, again.duplicates) == (1, 1)
    assert stored(container)["x"].value == 5


def test_each_bad_record_is_refused_with_a_reason_and_the_rest_are_kept(container: Any) -> None:
    batch = [
        rec("ok"),
        rec("unknown", ent="nope"),
        rec("flat", ent="flat"),
        rec("early", time=T0 + timedelta(minutes=10)),
        rec("after-cancel", ent="ent-2", time=T0 + 6 * H),
        rec("metric", metric="bandwidth"),
        rec("negative", value=-1),
        rec("text", value="lots"),
        rec("future", time=T0 + 11 * H),
        {**rec("badtime"), "time": "10 o'clock"},
        rec("labels", labels={"Bad Key": "x"}),
        {"entitlement": "ent-1", "metric": "requests", "value": 1},
        "not an object",
    ]
    result = record_usage(container, batch)
    assert result.accepted == 1
    reasons = {r.id: r.reason for r in result.rejected}
    assert "unknown entitlement" in reasons["unknown"]
    assert "not usage-billed" in reasons["flat"]
    assert "not active" in reasons["early"]
    assert "not active" in reasons["after-cancel"]
    assert "unknown metric 'bandwidth'" in reasons["metric"]
    assert "negative" in reasons["negative"]
    assert "not a number" in reasons["text"]
    assert "future" in reasons["future"]
    assert "RFC 3339" in reasons["badtime"]
    assert "label key" in reasons["labels"]
    anonymous = sorted(r.reason for r in result.rejected if r.id is None)
    assert anonymous == ["each record must be an object", "id is required (a non-empty string)"]
    assert len(result.rejected) == 12
    assert set(stored(container)) == {"ok"}


def test_a_plan_change_splits_the_window_and_the_metric_must_exist_in_that_plan(
    migrated_database_url: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        '[products.example-product]\nservice = "svc"\n'
        'metrics = { requests = "int64", gpu = "int64" }\n'
        '[products.example-product.plans.basic]\nmetrics = ["requests"]\n'
        "[products.example-product.plans.pro]\n"
    )
    c = metering_container(
        migrated_database_url, clock=FixedClock(T0 + 10 * H), USAGE_CATALOG=str(catalog)
    )
    change = T0 + 3 * H + timedelta(minutes=30)
    with c.sessions.begin() as session:
        seed_entitlements(
            session,
            [SeededEntitlement("e", "basic", T0, "project_number:9", changes=[(change, "pro")])],
        )
    result = record_usage(
        c,
        [
            rec("before", ent="e", time=change - timedelta(minutes=1)),
            rec("after", ent="e", time=change),
            rec("gpu-before", ent="e", metric="gpu", time=change - timedelta(minutes=1)),
            rec("gpu-after", ent="e", metric="gpu", time=change + H),
        ],
    )
    assert [r.id for r in result.rejected] == ["gpu-before"]
    rows = stored(c)
    assert rows["before"].window_start == T0 + 3 * H
    assert rows["after"].window_start == change
    assert rows["gpu-after"].window_start == T0 + 4 * H
    c.close()


def ledger_row(container: Any, entitlement: str, start: datetime, end: datetime) -> None:
    with container.sessions.begin() as session:
        session.add(
            UsageReport(
                operation_id=f"op-{entitlement}-{start.isoformat()}",
                entitlement_id=entitlement,
                consumer_id="c",
                plan="basic",
                window_start=start,
                window_end=end,
                status="accepted",
            )
        )


def test_a_late_record_is_carried_into_the_first_unreported_window_keeping_its_time(
    container: Any,
) -> None:
    ledger_row(container, "ent-1", T0 + timedelta(minutes=20), T0 + H)
    ledger_row(container, "ent-1", T0 + H, T0 + 2 * H)
    result = record_usage(container, [rec("late", time=T0 + H + timedelta(minutes=9))])
    assert result.accepted == 1
    row = stored(container)["late"]
    assert row.window_start == T0 + 2 * H
    assert row.time == T0 + H + timedelta(minutes=9)


def test_a_late_record_is_refused_under_the_reject_policy_or_when_no_window_is_left(
    migrated_database_url: str,
) -> None:
    c = metering_container(
        migrated_database_url, clock=FixedClock(T0 + 10 * H), USAGE_LATE_POLICY="reject"
    )
    with c.sessions.begin() as session:
        seed_entitlements(session, [SeededEntitlement("e", "basic", T0, "project_number:9")])
    ledger_row(c, "e", T0, T0 + H)
    result = record_usage(c, [rec("late", ent="e", time=T0 + timedelta(minutes=5))])
    assert "already reported" in result.rejected[0].reason
    c.close()


def test_a_late_record_after_the_final_window_of_a_cancelled_entitlement_is_refused(
    container: Any,
) -> None:
    ledger_row(container, "ent-2", T0, T0 + 6 * H)
    result = record_usage(container, [rec("late", ent="ent-2", time=T0 + 5 * H)])
    assert "no later window" in result.rejected[0].reason


def test_a_retried_record_stored_earlier_is_a_duplicate_even_if_now_late(
    migrated_database_url: str,
) -> None:
    c = metering_container(
        migrated_database_url, clock=FixedClock(T0 + 10 * H), USAGE_LATE_POLICY="reject"
    )
    with c.sessions.begin() as session:
        seed_entitlements(session, [SeededEntitlement("e", "basic", T0, "project_number:9")])
    batch = [rec("r1", ent="e", time=T0 + timedelta(minutes=5))]
    assert record_usage(c, batch).accepted == 1
    ledger_row(c, "e", T0, T0 + H)
    again = record_usage(c, batch)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 1, [])
    c.close()


def test_concurrent_batches_with_the_same_ids_count_each_record_once(container: Any) -> None:
    batch = [rec(f"r{i}", value=1) for i in range(200)]
    results: list[Any] = []

    def send() -> None:
        results.append(record_usage(container, batch))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.accepted for r in results) == 200
    assert sum(r.duplicates for r in results) == 600
    with container.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(UsageRecord)) == 200


def _wait_until_blocked(container: Container, blocked: threading.Thread) -> None:
    """Until `blocked` waits on a lock (PostgreSQL: seen in pg_stat_activity). SQLite shows no
    waiter: a short pause lets the thread reach its insert (the outcome is the same if not)."""
    deadline = time.monotonic() + 30
    while blocked.is_alive() and time.monotonic() < deadline:
        if container.engine.dialect.name != "postgresql":
            time.sleep(0.3)
            return
        with container.engine.connect() as conn:
            waiting = conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the second request never waited for the first one's transaction")


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_an_id_inserted_by_a_transaction_still_open_is_decided_when_that_transaction_ends(
    container: Any, outcome: str
) -> None:
    """Another request's uncommitted `held`: a duplicate once it commits, ours if it rolls back."""
    holder = container.sessions()
    holder.begin()
    holder.execute(
        sa.insert(UsageRecord).values(
            record_id="held",
            entitlement_id="ent-1",
            metric="requests",
            value=Decimal(7),
            time=T0 + H,
            window_start=T0 + H,
            labels={},
            received_at=T0 + H,
        )
    )
    results: list[Any] = []
    second = threading.Thread(
        target=lambda: results.append(record_usage(container, [rec("held"), rec("new")]))
    )
    second.start()
    try:
        _wait_until_blocked(container, second)
    finally:
        holder.commit() if outcome == "commit" else holder.rollback()
        holder.close()
        second.join(60)
    (result,) = results
    rows = stored(container)
    if outcome == "commit":
        assert (result.accepted, result.duplicates, result.rejected) == (1, 1, [])
        assert rows["held"].value == 7  # the first request's record, not ours
    else:
        assert (result.accepted, result.duplicates, result.rejected) == (2, 0, [])
        assert rows["held"].value == 1
    assert set(rows) == {"held", "new"}


def test_values_times_and_labels_are_stored_exactly_on_every_backend(container: Any) -> None:
    """Each record keeps its own value, time and labels, whatever the batch's other records."""
    moment = T0 + 2 * H + timedelta(minutes=7, seconds=3, microseconds=123456)
    batch = [
        rec("big", value="9999999999999999999999999999.999999999", time=moment),
        rec("tiny", value="0.000000001", time=moment, labels={"resource_name": "db-1"}),
        rec("offset", time=T0 + 3 * H, labels={"zone": "été", "resource_name": "db-1"}),
        rec("same", value=3, labels={"resource_name": "db-1"}),
        rec("reordered", labels={"resource_name": "db-1", "zone": "été"}),
    ]
    batch[2]["time"] = "2025-03-01T08:30:00.5+05:30"  # 03:00:00.5 UTC
    assert record_usage(container, batch).to_json() == {
        "accepted": 5,
        "duplicates": 0,
        "rejected": [],
    }
    rows = stored(container)
    if container.engine.dialect.name == "postgresql":  # SQLite stores NUMERIC as a REAL
        assert rows["big"].value == Decimal("9999999999999999999999999999.999999999")
    assert rows["tiny"].value == Decimal("0.000000001")
    assert rows["same"].value == 3
    assert (rows["big"].time, rows["big"].window_start) == (moment, T0 + 2 * H)
    assert rows["offset"].time == T0 + 3 * H + timedelta(microseconds=500000)
    assert rows["big"].labels == {}
    assert rows["tiny"].labels == rows["same"].labels == {"resource_name": "db-1"}
    assert (
        rows["offset"].labels
        == rows["reordered"].labels
        == {
            "zone": "été",
            "resource_name": "db-1",
        }
    )
    assert {r.received_at for r in rows.values()} == {T0 + 10 * H}


def test_the_store_refuses_a_naive_time_on_every_backend(container: Container) -> None:
    naive = NewRecord(
        "n", "ent-1", "requests", Decimal(1), datetime(2025, 3, 1, 2), T0 + 2 * H, {}, T0 + 10 * H
    )
    with pytest.raises(ValueError, match="naive"), container.unit_of_work() as uow:
        uow.usage.insert_records([naive])
    assert stored(container) == {}
