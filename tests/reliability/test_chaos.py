"""The chaos run (issue 13, item 4): 3 `serve` replicas on one PostgreSQL database sharing one
Pub/Sub subscription, a seeded marketplace, Procurement faults, duplicate and reordered
notifications, replicas SIGKILLed; at the end our records equal the API's, Service Control's
ledger equals the usage ingested, and every hook arrived in order. The seed is printed; rerun
with `RELIABILITY_SEED=...`. The reduced run is part of the normal suite; `make reliability`
runs the full one (RELIABILITY_FULL=1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.chaos import RunConfig, run_chaos
from tests.support import infra

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.reliability]


@pytest.mark.timeout(900)  # about a minute on an idle machine; far longer on a loaded one
def test_reduced_chaos_run_converges_to_the_apis_truth_with_exact_billing(
    pubsub_emulator_host: str, test_output_dir: Path
) -> None:
    """A few hundred events, one replica killed: nothing lost, nothing billed twice."""
    # Syncs every 10 s: the outage meets a replica's sync sooner (the full run keeps 20 s).
    config = RunConfig.from_env(events=200, kills=1, converge_seconds=150.0, sync_seconds=10)
    folder = test_output_dir / "reliability" / f"reduced-{config.seed}"
    with infra.postgres_database() as url:
        report = run_chaos(url, pubsub_emulator_host, folder, config)
    assert report.kills == 1
    assert not report.problems, report.describe()


@pytest.mark.skipif(not os.environ.get("RELIABILITY_FULL"), reason="make reliability runs it")
@pytest.mark.parametrize("policy", ["signup", "auto"])
def test_full_chaos_run_converges_under_repeated_kills(
    pubsub_emulator_host: str, test_output_dir: Path, policy: str
) -> None:
    """At least 2,000 events, a replica killed every few seconds, for each approval policy."""
    events = int(os.environ.get("RELIABILITY_EVENTS", "2000"))
    config = RunConfig.from_env(
        events=events, kills=max(1, events // 20), policy=policy, converge_seconds=300.0
    )
    folder = test_output_dir / "reliability" / f"full-{policy}-{config.seed}"
    with infra.postgres_database() as url:
        report = run_chaos(url, pubsub_emulator_host, folder, config)
    assert report.kills >= 10
    assert not report.problems, report.describe()
