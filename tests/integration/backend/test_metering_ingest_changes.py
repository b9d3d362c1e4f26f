"""Ingestion sees every change between batches, and stores what the ORM reads back unchanged.

Entitlements built for one batch are memoised on their rows' content; these tests pin that a plan
change or a cancellation made after a batch is applied to the next one (SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db.models import Entitlement, PlanHistory, UsageRecord
from marketplace_saas.service.metering.ingest import record_usage
from tests.support.metering import (
    T0,
    FixedClock,
    SeededEntitlement,
    metering_container,
    seed_entitlements,
)

H = timedelta(hours=1)


def rec(rid: str, moment: datetime, metric: str = "requests", **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "entitlement": "e",
        "metric": metric,
        "value": 1,
        "time": moment.isoformat(),
        **extra,
    }


@pytest.fixture
def container(migrated_database_url: str) -> Any:
    c = metering_container(migrated_database_url, clock=FixedClock(T0 + 10 * H))
    with c.sessions.begin() as session:
        seed_entitlements(session, [SeededEntitlement("e", "basic", T0, "project_number:9")])
    yield c
    c.close()


def window_starts(container: Any) -> dict[str, datetime]:
    with container.sessions() as session:
        rows = session.execute(sa.select(UsageRecord.record_id, UsageRecord.window_start))
        return {str(record_id): start for record_id, start in rows}


def test_a_plan_change_recorded_after_a_batch_splits_the_next_batchs_window(
    container: Any,
) -> None:
    change = T0 + 3 * H + timedelta(minutes=30)
    assert record_usage(container, [rec("before", change + timedelta(minutes=5))]).accepted == 1
    with container.sessions.begin() as session:
        session.add(
            PlanHistory(entitlement_id="e", plan="pro", previous_plan="basic", effective_at=change)
        )
        session.get(Entitlement, "e").plan = "pro"  # type: ignore[union-attr]
    assert record_usage(container, [rec("after", change + timedelta(minutes=5))]).accepted == 1
    starts = window_starts(container)
    assert starts["before"] == T0 + 3 * H
    assert starts["after"] == change


def test_a_cancellation_recorded_after_a_batch_refuses_the_next_batchs_later_records(
    container: Any,
) -> None:
    assert record_usage(container, [rec("r1", T0 + 5 * H)]).accepted == 1
    with container.sessions.begin() as session:
        entitlement = session.get(Entitlement, "e")
        assert entitlement is not None
        entitlement.cancelled_at = T0 + 4 * H
    result = record_usage(container, [rec("r2", T0 + 5 * H), rec("r3", T0 + 3 * H)])
    assert result.accepted == 1
    assert [r.id for r in result.rejected] == ["r2"]
    assert "not active" in result.rejected[0].reason


def test_stored_values_read_back_as_sent_whatever_the_offset_and_precision(
    container: Any,
) -> None:
    moment = datetime(2025, 3, 1, 7, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5)))
    batch = [
        rec("a", moment, value="0.000000001", labels={"env": "prod", "resource_name": "db-1"}),
        rec("b", moment, value=12345678901234567, labels={}),
        rec("c", moment, metric="storage_gb", value=Decimal("2.5")),
    ]
    assert record_usage(container, batch).to_json() == {
        "accepted": 3,
        "duplicates": 0,
        "rejected": [],
    }
    with container.sessions() as session:
        rows = {r.record_id: r for r in session.scalars(sa.select(UsageRecord))}
    assert rows["a"].time == moment
    assert rows["a"].window_start == T0 + 2 * H
    assert rows["a"].labels == {"env": "prod", "resource_name": "db-1"}
    assert rows["b"].labels == {}
    assert rows["c"].value == Decimal("2.5")
    assert rows["a"].received_at == T0 + 10 * H
    assert {r.operation_id for r in rows.values()} == {None}


def test_an_entitlement_is_matched_to_the_catalog_by_its_product_external_name(
    container: Any,
) -> None:
    """The product id may differ from the catalog's; the raw `productExternalName` matches it."""
    with container.sessions.begin() as session:
        seed_entitlements(session, [SeededEntitlement("x", "basic", T0, "project_number:8")])
        entitlement = session.get(Entitlement, "x")
        assert entitlement is not None
        entitlement.product = "id-unknown-to-the-catalog"
    refused = record_usage(container, [{**rec("r1", T0 + H), "entitlement": "x"}])
    assert "not usage-billed" in refused.rejected[0].reason
    with container.sessions.begin() as session:
        entitlement = session.get(Entitlement, "x")
        assert entitlement is not None
        entitlement.raw = {"productExternalName": "example-product.endpoints.sandbox.cloud.goog"}
    assert record_usage(container, [{**rec("r2", T0 + H), "entitlement": "x"}]).accepted == 1
