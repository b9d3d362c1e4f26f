"""Reconciliation: every unique unit of usage is accepted by Service Control exactly once.

Random usage (duplicates, late records, plan changes, a cancellation) for a dozen entitlements
over ten hours; the reporter runs clean, then under 503s and partial `reportErrors`, then with
every answer lost after the request was sent (a timeout), then as a `report-usage` process killed
with SIGKILL right after Service Control recorded a report and before the ledger did, then to
completion. The later runs re-send the operations whose outcome was lost, with the same
operationIds. The emulator's accepted reports must add up, per entitlement, metric and plan, to the
unique records ingested; no operationId may be accepted twice; each consumer's windows must be
contiguous and never overlap.

Every fault is hit by construction, not by luck: the emulator's seeded faults decide the first
round of a run (one check per entitlement, then one report; the same draws whatever the order of
the concurrent checks), the lost answers are every answer, and the killed process stalls at a
known point (`tests.support.stalling_reporter`) until the test kills it.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import UsageRecord, UsageReport
from marketplace_saas.adapters.servicecontrol import (
    ServiceControlGateway,
    TransientServiceControlError,
)
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.config import Settings
from marketplace_saas.service.metering.ingest import record_usage
from marketplace_saas.service.metering.report import report_usage
from tests.support import stalling_reporter
from tests.support.metering import SeededEntitlement, seed_entitlements

PROVIDER = "DEMO-sandbox"
SERVICE = "example-product.endpoints.sandbox.cloud.goog"
METRICS = ("requests", "storage_gb")
H = timedelta(hours=1)
GRACE = 120
ENTITLEMENTS = 12
REPO = Path(__file__).resolve().parents[3]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class TimeoutAfterSend:
    """Forwards every report to Service Control, then raises a timeout as if the answer was lost."""

    def __init__(self, inner: ServiceControlGateway) -> None:
        self.inner = inner
        self.lost: list[str] = []  # operationIds Service Control was sent but we never heard of

    def check(self, service_name: str, operation: dict[str, Any]) -> dict[str, Any]:
        return self.inner.check(service_name, operation)

    def report(self, service_name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        self.inner.report(service_name, operations)
        self.lost += [op["operationId"] for op in operations]
        raise TransientServiceControlError("timed out after the request was sent")


class Recording:
    """Forwards to Service Control and remembers every operationId it reported."""

    def __init__(self, inner: ServiceControlGateway) -> None:
        self.inner = inner
        self.reported: list[str] = []

    def check(self, service_name: str, operation: dict[str, Any]) -> dict[str, Any]:
        return self.inner.check(service_name, operation)

    def report(self, service_name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        answer = self.inner.report(service_name, operations)
        self.reported += [op["operationId"] for op in operations]
        return answer


@pytest.fixture
def settings(migrated_database_url: str, emulator_url: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        MARKETPLACE_SANDBOX=True,
        MARKETPLACE_PROVIDER_ID=PROVIDER,
        DATABASE_URL=migrated_database_url,
        PROCUREMENT_API_ENDPOINT=emulator_url,
        SERVICE_CONTROL_API_ENDPOINT=emulator_url,
        USAGE_GRACE_SECONDS=GRACE,
    )


@pytest.fixture
def gateway(settings: Settings) -> Iterator[ServiceControlGateway]:
    gateway = ServiceControlGateway(settings, max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    yield gateway
    gateway.close()


def build_timeline(emulator: Emulator, rng: random.Random) -> tuple[datetime, list[Any]]:
    """Purchases at T0, plan changes after 5 h, one cancellation after 6.5 h; clock at T0+10h."""
    procurement = emulator.procurement
    ids = []
    for i in range(ENTITLEMENTS):
        account, entitlement = procurement.purchase(
            PROVIDER, "example-product", "basic" if i % 2 else "pro"
        )
        procurement.approve_account(PROVIDER, account.id, "signup")
        procurement.approve_entitlement(PROVIDER, entitlement.id)
        ids.append((entitlement.id, entitlement.usage_reporting_id))
    t0 = emulator.clock.now()
    emulator.advance_clock(5.3 * 3600)
    for entitlement_id, _ in ids[:4]:
        current = procurement.get_entitlement(PROVIDER, entitlement_id).plan
        new_plan = "basic" if current == "pro" else "pro"
        procurement.change_plan(PROVIDER, entitlement_id, new_plan)
        procurement.approve_plan_change(PROVIDER, entitlement_id, new_plan)
        emulator.advance_clock(rng.uniform(60, 900))
    emulator.advance_clock(3600)
    procurement.cancel(PROVIDER, ids[5][0], at_term_end=False)
    emulator.advance_clock(10 * 3600 - (emulator.clock.now() - t0).total_seconds())
    views = [procurement.find_by_usage_reporting_id(urid)[0] for _, urid in ids]
    return t0, views


def seed_from(views: list[Any]) -> list[SeededEntitlement]:
    seeded = []
    for view in views:
        periods = view.periods
        seeded.append(
            SeededEntitlement(
                view.id,
                periods[0].plan,
                periods[0].start,
                view.usage_reporting_id,
                cancelled_at=periods[-1].end,
                changes=[(p.start, p.plan) for p in periods[1:]],
            )
        )
    return seeded


def plan_at(entitlement: SeededEntitlement, moment: datetime) -> str:
    plan = entitlement.plan
    for start, name in entitlement.changes:
        if start <= moment:
            plan = name
    return plan


def random_records(
    rng: random.Random,
    entitlements: list[SeededEntitlement],
    start: datetime,
    end: datetime,
    tag: str,
) -> list[dict[str, Any]]:
    records = []
    for ent in entitlements:
        stop = min(end, ent.cancelled_at or end)
        span = (stop - max(start, ent.active_since)).total_seconds()
        for n in range(int(span / 3600 * 12)):
            moment = max(start, ent.active_since) + timedelta(seconds=rng.uniform(0, span))
            records.append(
                {
                    "id": f"{tag}-{ent.id}-{n}",
                    "entitlement": ent.id,
                    "metric": rng.choice(METRICS),
                    "value": rng.randint(0, 50),
                    "time": iso(moment),
                    "labels": {"resource_name": f"r{rng.randint(0, 1)}"},
                }
            )
    return records


def ingest(
    container: Container, records: list[dict[str, Any]], unique: dict[str, dict[str, Any]]
) -> None:
    for i in range(0, len(records), 500):
        result = record_usage(container, records[i : i + 500])
        assert result.rejected == [], result.rejected[:3]
    for record in records:
        unique.setdefault(record["id"], record)


def ledger_status(container: Container) -> dict[str, str]:
    """operationId -> status of every ledger row."""
    with container.sessions() as session:
        rows = session.execute(sa.select(UsageReport.operation_id, UsageReport.status)).all()
    return {row.operation_id: row.status for row in rows}


def run_killed_reporter(settings: Settings, now: datetime, signal_file: Path) -> list[str]:
    """`report-usage --once` as a process, SIGKILLed once Service Control answered its first report.

    The process (`tests.support.stalling_reporter`) stalls right after that answer, before it can
    record the outcome, and names the operationIds it sent in `signal_file`; the test waits for
    that file however long the loaded machine takes, so the kill always lands at that point.
    Returns those operationIds.
    """
    env = {
        **os.environ,
        "MARKETPLACE_SANDBOX": "1",
        "MARKETPLACE_PROVIDER_ID": PROVIDER,
        "DATABASE_URL": settings.database_url,
        "PROCUREMENT_API_ENDPOINT": str(settings.procurement_api_endpoint),
        "SERVICE_CONTROL_API_ENDPOINT": str(settings.service_control_api_endpoint),
        "USAGE_GRACE_SECONDS": str(GRACE),
        stalling_reporter.SIGNAL_FILE: str(signal_file),
    }
    log = signal_file.with_suffix(".log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                stalling_reporter.__name__,
                "report-usage",
                "--once",
                "--allow-future",
                "--now",
                iso(now),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not signal_file.exists():
            exited = process.poll()
            assert exited is None, f"the reporter exited ({exited}) before it reported: " + (
                log.read_text()
            )
            assert time.monotonic() < deadline, "no report within 120 s: " + log.read_text()
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    sent: list[str] = json.loads(signal_file.read_text())
    return sent


def test_every_unique_unit_is_accepted_once_in_contiguous_windows_despite_faults(
    settings: Settings,
    gateway: ServiceControlGateway,
    emulator: Emulator,
    emulator_url: str,
    tmp_path: Path,
) -> None:
    rng = random.Random(20250301)
    t0, views = build_timeline(emulator, rng)
    recording = Recording(gateway)
    clean = bootstrap(settings, servicecontrol=recording, clock=emulator.clock.now)
    single_try = ServiceControlGateway(settings, max_attempts=1)
    faulty = bootstrap(settings, servicecontrol=single_try, clock=emulator.clock.now)
    lost_answers = TimeoutAfterSend(single_try)
    lossy = bootstrap(settings, servicecontrol=lost_answers, clock=emulator.clock.now)
    entitlements = seed_from(views)
    with clean.sessions.begin() as session:
        seed_entitlements(session, entitlements)
    unique: dict[str, dict[str, Any]] = {}
    records = random_records(rng, entitlements, t0, t0 + 8 * H, "on-time")
    duplicates = [{**r, "value": r["value"] + 1} for r in rng.sample(records, len(records) // 10)]
    ingest(clean, records + duplicates, unique)

    # 1. A clean run up to T0+4h; then late records for hours already reported.
    assert not report_usage(clean, now=t0 + 4 * H).failed
    late = random_records(rng, entitlements, t0, t0 + 3 * H, "late")[::4]
    ingest(clean, late, unique)
    with clean.sessions() as session:
        query = sa.select(UsageRecord.time, UsageRecord.window_start).where(
            UsageRecord.record_id.like("late-%")
        )
        placed = session.execute(query).all()
    assert len(placed) == len(late)
    assert all(window_start > time for time, window_start in placed)  # carried forward

    # 2. Faults: 503s and partial reportErrors. The run's first round is one check per
    # entitlement (12 draws of seed 7's generator, one of them a 503, in whatever order the
    # concurrent checks arrive), then one report (the 13th draw: served, 4 of its 11 operations
    # refused), so each fault below is hit on every run, not by luck.
    emulator.faults.configure(
        FaultSettings(
            seed=7, servicecontrol={"errorRate": 0.25, "statuses": [503], "reportErrorRate": 0.3}
        )
    )
    faulted = report_usage(faulty, now=t0 + 6 * H)
    kinds = " ".join(e["error"] for e in faulted.errors)
    assert "Injected fault" in kinds  # partial reportErrors
    assert "503" in kinds  # Service Control unavailable, past the gateway's single attempt
    assert faulted.accepted > 0

    # 2b. Every answer lost after the request was sent: Service Control recorded the operations,
    # the reporter cannot know, so they stay unfinished (`sent`) for a later run to re-send.
    emulator.faults.clear()
    lost = report_usage(lossy, now=t0 + 7 * H)
    assert "timed out after the request was sent" in " ".join(e["error"] for e in lost.errors)
    assert lost.accepted == 0
    assert lost_answers.lost
    status = ledger_status(clean)
    assert {status[operation_id] for operation_id in lost_answers.lost} == {"sent"}

    # 3. SIGKILL of a reporter process right after Service Control answered its first report,
    # before the outcome reached the ledger: those operations stay `sent`, and windows of the
    # same run that were still to go stay `pending` (killed mid-run, not after it).
    killed = run_killed_reporter(settings, t0 + 10 * H, tmp_path / "stalled")
    assert killed
    recorded_by_google = {
        a.operation.operation_id for a in emulator.servicecontrol.accepted_reports(SERVICE)
    }
    assert set(killed) <= recorded_by_google
    status = ledger_status(clean)
    assert {status[operation_id] for operation_id in killed} == {"sent"}
    assert "pending" in status.values()

    # 4. Faults cleared: runs until everything is accepted.
    recording.reported.clear()
    for _ in range(5):
        final = report_usage(clean, now=t0 + 10 * H)
        assert final.rejected == 0, final.errors
        if not final.failed:
            break
    else:
        pytest.fail("the reporter did not finish")
    clean.close()
    faulty.close()
    lossy.close()
    single_try.close()
    # The operations whose outcome was lost (timeouts, the killed process) went out again, with
    # the same operationIds: Service Control counts each once (checked below).
    assert set(lost_answers.lost) <= set(recording.reported)
    assert set(killed) <= set(recording.reported)

    reports = httpx.get(f"{emulator_url}/emulator/v1/services/{SERVICE}/reports").json()["reports"]
    ids = [r["operationId"] for r in reports]
    assert len(ids) == len(set(ids)), "an operationId was accepted twice"

    expected: dict[tuple[str, str, str], int] = defaultdict(int)
    by_id = {e.id: e for e in entitlements}
    for record in unique.values():
        ent = by_id[record["entitlement"]]
        moment = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        expected[(ent.id, record["metric"], plan_at(ent, moment))] += record["value"]
    reported: dict[tuple[str, str, str], int] = defaultdict(int)
    windows: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for report in reports:
        for value_set in report["metricValueSets"]:
            metric_id = value_set["metricName"].removeprefix(SERVICE + "/")
            plan, metric = metric_id.split("_", 1)
            assert plan == report["plan"]
            amount = int(value_set["metricValues"][0]["int64Value"])
            reported[(report["entitlement"], metric, plan)] += amount
            windows[(report["consumerId"], metric)].append((report["startTime"], report["endTime"]))
    assert {k: v for k, v in reported.items() if v} == {k: v for k, v in expected.items() if v}

    for ent in entitlements:
        for metric in METRICS:
            spans = sorted(windows[(str(ent.usage_reporting_id), metric)])
            assert spans, ent.id
            assert spans[0][0] == iso(ent.active_since)
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start == end, f"{ent.id} {metric}: gap or overlap at {end} / {start}"
            if ent.cancelled_at is not None:
                assert spans[-1][1] == iso(ent.cancelled_at)
