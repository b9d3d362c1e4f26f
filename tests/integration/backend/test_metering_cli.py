"""`usage show`, `usage pending` and `report-usage` from the command line."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from marketplace_saas.entrypoints.cli import main
from marketplace_saas.service.metering.ingest import record_usage
from tests.support.metering import (
    T0,
    FixedClock,
    SeededEntitlement,
    metering_container,
    seed_entitlements,
)


@pytest.fixture
def env(migrated_database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    container = metering_container(migrated_database_url, clock=FixedClock(T0 + timedelta(hours=3)))
    with container.sessions.begin() as session:
        seed_entitlements(session, [SeededEntitlement("ent-1", "basic", T0, "project_number:1")])
    record_usage(
        container,
        [
            {
                "id": "a",
                "entitlement": "ent-1",
                "metric": "requests",
                "value": 4,
                "time": (T0 + timedelta(minutes=5)).isoformat(),
            },
            {
                "id": "b",
                "entitlement": "ent-1",
                "metric": "requests",
                "value": 2,
                "time": (T0 + timedelta(hours=1, minutes=5)).isoformat(),
            },
        ],
    )
    container.close()
    for key, value in {
        "DATABASE_URL": migrated_database_url,
        "MARKETPLACE_SANDBOX": "1",
        "PROCUREMENT_API_ENDPOINT": "http://127.0.0.1:9",
        "SERVICE_CONTROL_API_ENDPOINT": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(key, value)
    return migrated_database_url


def test_usage_show_lists_each_hour_with_ingested_sums_and_status(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "show", "ent-1", "--json"]) == 0
    windows = json.loads(capsys.readouterr().out)["windows"]
    assert [(w["status"], w["ingested"]) for w in windows] == [
        ("open", {"requests": "4"}),
        ("open", {"requests": "2"}),
    ]
    assert main(["usage", "show", "ent-1"]) == 0
    table = capsys.readouterr().out
    assert "requests=4" in table
    assert "STATUS" in table


def test_dry_run_prints_the_operations_and_changes_nothing(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = (T0 + timedelta(hours=2, minutes=10)).isoformat()
    assert main(["report-usage", "--once", "--dry-run", "--now", now, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["closed"] == 2
    assert len(summary["operations"]) == 2
    assert main(["usage", "pending", "--json"]) == 0
    pending = json.loads(capsys.readouterr().out)
    assert pending["windows"] == []
    assert pending["unreported_records"][0]["records"] == 2


def test_report_usage_exits_non_zero_when_service_control_is_unreachable(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = (T0 + timedelta(hours=2, minutes=10)).isoformat()
    assert main(["report-usage", "--once", "--now", now]) == 1
    capsys.readouterr()
    assert main(["usage", "pending", "--json"]) == 0
    pending = json.loads(capsys.readouterr().out)
    assert [w["status"] for w in pending["windows"]] == ["pending", "pending"]
    assert "check" in pending["windows"][0]["error"]
