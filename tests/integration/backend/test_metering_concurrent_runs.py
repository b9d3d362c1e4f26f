"""Two `report-usage` runs at once: one reports, the other says so, and nothing is sent twice."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.engine import create_engine
from marketplace_saas.adapters.db.models import UsageReport
from marketplace_saas.adapters.db.replica_locks import report_claims
from marketplace_saas.adapters.servicecontrol import ServiceControlGateway
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.entrypoints.cli import main
from marketplace_saas.service.metering.ingest import record_usage
from marketplace_saas.service.metering.report import ANOTHER_RUN, ReportSummary, report_usage
from tests.integration.backend.conftest import backend_settings
from tests.support.metering import emulator_entitlement, seed_entitlements, to_half_past

SERVICE = "example-product.endpoints.sandbox.cloud.goog"
WAIT = 30  # seconds; only a bound against a hang, never a timing assertion


class HeldGateway:
    """A gateway whose first `check` waits until told to go on (the other run has finished)."""

    def __init__(self, inner: ServiceControlGateway) -> None:
        self.inner = inner
        self.in_check = threading.Event()
        self.go_on = threading.Event()

    def check(self, service: str, operation: dict[str, Any]) -> dict[str, Any]:
        self.in_check.set()
        assert self.go_on.wait(WAIT)
        return self.inner.check(service, operation)

    def report(self, service: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        return self.inner.report(service, operations)


@pytest.fixture(autouse=True)
def _half_past(emulator: Emulator) -> None:
    """Every test here starts at half past an hour (`to_half_past`): its windows' count does not
    depend on the minute the suite reaches it."""
    to_half_past(emulator)


@pytest.fixture
def make(
    migrated_database_url: str, emulator: Emulator, emulator_url: str
) -> Iterator[Callable[..., tuple[Container, ServiceControlGateway]]]:
    made: list[tuple[Container, ServiceControlGateway]] = []

    def build() -> tuple[Container, ServiceControlGateway]:
        settings = backend_settings(
            migrated_database_url,
            emulator_url,
            service_control_api_endpoint=emulator_url,
            usage_grace_seconds=60,
        )
        gateway = ServiceControlGateway(settings, backoff_base=0.01, backoff_max=0.02)
        container = bootstrap(settings, servicecontrol=gateway, clock=emulator.clock.now)
        made.append((container, gateway))
        return container, gateway

    yield build
    for container, gateway in made:
        container.close()
        gateway.close()


def _setup(emulator: Emulator, container: Container) -> None:
    ent = emulator_entitlement(emulator, "basic")
    with container.sessions.begin() as session:
        seed_entitlements(session, [ent])
    emulator.advance_clock(3 * 3600)
    time = (ent.active_since + timedelta(minutes=1)).isoformat()
    record = {"id": "r1", "entitlement": ent.id, "metric": "requests", "value": 5, "time": time}
    assert record_usage(container, [record]).accepted == 1


def _ledger(container: Container) -> list[tuple[str, str]]:
    with container.sessions() as session:
        query = sa.select(UsageReport.operation_id, UsageReport.status)
        return [(op, status) for op, status in session.execute(query.order_by(UsageReport.id))]


def _accepted_ids(emulator: Emulator) -> list[str]:
    return [a.to_json()["operationId"] for a in emulator.servicecontrol.accepted_reports(SERVICE)]


def test_a_run_that_finds_another_reporting_sends_nothing_and_says_so(
    make: Callable[..., tuple[Container, ServiceControlGateway]], emulator: Emulator
) -> None:
    first, inner = make()
    second, _ = make()
    _setup(emulator, first)
    held = HeldGateway(inner)
    results: dict[str, ReportSummary] = {}
    runner = threading.Thread(
        target=lambda: results.setdefault("first", report_usage(first, gateway=held))
    )
    runner.start()
    try:
        assert held.in_check.wait(WAIT)  # the first run has closed its windows and is sending
        other = report_usage(second)
    finally:
        held.go_on.set()
        runner.join(WAIT)
    assert not runner.is_alive()
    assert other.errors == [{"error": ANOTHER_RUN}]
    assert (other.closed, other.accepted, other.retrying) == (0, 0, 0)
    assert not other.failed  # nothing of its own failed: `report-usage` exits 0
    done = results["first"]
    assert not done.failed, done.errors
    assert done.closed == done.accepted >= 3
    ledger = _ledger(first)
    assert {status for _, status in ledger} == {"accepted"}
    ids = _accepted_ids(emulator)
    assert sorted(ids) == sorted(op for op, _ in ledger)  # each window once, none twice
    again = report_usage(second)  # the lock was released: a later run works and finds nothing
    assert (again.closed, again.accepted, again.errors) == (0, 0, [])


def test_two_racing_runs_report_every_window_exactly_once(
    make: Callable[..., tuple[Container, ServiceControlGateway]], emulator: Emulator
) -> None:
    containers = [make()[0], make()[0]]
    _setup(emulator, containers[0])
    barrier = threading.Barrier(2)
    summaries: list[ReportSummary] = []
    failures: list[BaseException] = []

    def run(container: Container) -> None:
        try:
            barrier.wait(WAIT)
            summaries.append(report_usage(container))
        except BaseException as exc:  # a traceback here is the bug this test guards against
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not failures, failures
    assert len(summaries) == 2
    for summary in summaries:
        assert not summary.failed, summary.errors
        assert summary.errors in ([], [{"error": ANOTHER_RUN}])
    ledger = _ledger(containers[0])
    assert {status for _, status in ledger} == {"accepted"}
    assert sum(s.closed for s in summaries) == len(ledger) >= 3
    assert sum(s.accepted for s in summaries) == len(ledger)
    ids = _accepted_ids(emulator)
    assert Counter(ids) == Counter(op for op, _ in ledger)


def test_report_usage_cli_says_another_run_is_reporting_and_exits_zero(
    migrated_database_url: str,
    make: Callable[..., tuple[Container, ServiceControlGateway]],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """While another run holds every claim, the CLI changes nothing: no traceback."""
    _setup(emulator, make()[0])  # a window due, in a shard the CLI cannot claim
    for key, value in {
        "DATABASE_URL": migrated_database_url,
        "MARKETPLACE_SANDBOX": "1",
        "PROCUREMENT_API_ENDPOINT": "http://127.0.0.1:9",
        "SERVICE_CONTROL_API_ENDPOINT": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(key, value)
    engine = create_engine(migrated_database_url)
    try:
        with report_claims(engine) as claims:
            assert all(claims.take(k) for k in range(claims.shards))
            assert main(["report-usage", "--once"]) == 0
            text = capsys.readouterr()
            assert main(["report-usage", "--once", "--json"]) == 0
            data = capsys.readouterr()
    finally:
        engine.dispose()
    assert f"report-usage: {ANOTHER_RUN}" in text.err
    assert "Traceback" not in text.err
    assert json.loads(data.out)["errors"] == [{"error": ANOTHER_RUN}]
    assert f"report-usage: {ANOTHER_RUN}" in data.err


# -- reporters on separate engines share the work (PostgreSQL: claims per shard) --------------

on_postgresql = pytest.mark.parametrize("migrated_database_url", ["postgresql"], indirect=True)


class SlowGateway(HeldGateway):
    """Each check takes a little while, so that two runs overlap."""

    def check(self, service: str, operation: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.02)
        return self.inner.check(service, operation)


def _many(emulator: Emulator, container: Container, count: int) -> None:
    ents = [emulator_entitlement(emulator, "basic") for _ in range(count)]
    with container.sessions.begin() as session:
        seed_entitlements(session, ents)
    emulator.advance_clock(3 * 3600)
    records = [
        {
            "id": f"r-{ent.id}",
            "entitlement": ent.id,
            "metric": "requests",
            "value": 5,
            "time": (ent.active_since + timedelta(minutes=1)).isoformat(),
        }
        for ent in ents
    ]
    assert record_usage(container, records).accepted == count


@pytest.mark.postgres
@on_postgresql
def test_two_reporters_share_the_windows_and_send_each_once(
    make: Callable[..., tuple[Container, ServiceControlGateway]], emulator: Emulator
) -> None:
    """Two runs at once, each its own engine: both report some shards, no operationId is sent
    twice and none is skipped (every ledger row accepted)."""
    (first, inner), (second, _) = make(), make()
    _many(emulator, first, 24)
    barrier = threading.Barrier(2)
    summaries: list[ReportSummary] = []

    def run(container: Container) -> None:
        barrier.wait(WAIT)
        summaries.append(report_usage(container, gateway=SlowGateway(inner)))

    threads = [threading.Thread(target=run, args=(c,)) for c in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
    assert len(summaries) == 2
    assert all(not s.failed for s in summaries), [s.errors for s in summaries]
    assert all(s.accepted > 0 for s in summaries), "one reporter did all the work"
    ledger = _ledger(first)
    assert {status for _, status in ledger} == {"accepted"}
    assert len(ledger) >= 24
    assert sum(s.accepted for s in summaries) == len(ledger)
    assert Counter(_accepted_ids(emulator)) == Counter(op for op, _ in ledger)


_HOLD_CLAIMS = """
import sys, time
from marketplace_saas.adapters.db.engine import create_engine
from marketplace_saas.adapters.db.replica_locks import report_claims
with report_claims(create_engine(sys.argv[1])) as claims:
    assert all(claims.take(k) for k in range(claims.shards))
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.postgres
@on_postgresql
def test_a_dead_reporters_claims_are_released_and_its_windows_reported(
    migrated_database_url: str,
    make: Callable[..., tuple[Container, ServiceControlGateway]],
    emulator: Emulator,
) -> None:
    """A reporter process holding every claim is SIGKILLed: the survivor, blocked until then,
    reports every window once afterwards."""
    container, _ = make()
    _many(emulator, container, 3)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_CLAIMS, migrated_database_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        blocked = report_usage(container)
        assert blocked.errors == [{"error": ANOTHER_RUN}]
        assert (blocked.closed, blocked.accepted) == (0, 0)
    finally:
        holder.kill()  # SIGKILL: no clean-up of its own
        holder.wait(WAIT)
        if holder.stdout is not None:
            holder.stdout.close()
    deadline = time.monotonic() + WAIT
    done = report_usage(container)
    while done.errors and time.monotonic() < deadline:  # the server notices the closed socket
        time.sleep(0.1)
        done = report_usage(container)
    assert done.errors == []
    ledger = _ledger(container)
    assert done.accepted == len(ledger) >= 3
    assert {status for _, status in ledger} == {"accepted"}
    assert Counter(_accepted_ids(emulator)) == Counter(op for op, _ in ledger)
