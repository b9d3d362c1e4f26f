"""The chaos run's Procurement outage: for a while Google answers the provider as if it had lost
every account and entitlement (empty lists, 404 for every GET: the emulator's `forgetProviders`
fault), while an operator's `sync` and the replicas' periodic syncs run.

Nothing may be marked deleted: the mass-deletion guard stops every sync (the operator's exits 2),
and once Google answers again the next periodic sync clears the block. The backend is let settle
first (no notification in flight), so that what the outage meets is the syncs alone: a
notification handled meanwhile would read the same 404s (see the report: the listener has no
guard of its own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.integration.backend.process_support import run_cli
from tests.reliability import checks
from tests.reliability.stack import PROVIDER, Stack

QUIET_SECONDS = 200.0  # for the notifications in flight to settle before the outage (one that
# Pub/Sub stopped delivering waits 90 s for the inbox job, which runs once a minute)
REPLICA_SYNC_SECONDS = 45.0  # for a replica's periodic sync (SYNC_INTERVAL_SECONDS) to meet it
OPERATOR_SYNC_TRIES = 5  # an injected 503 on a listing ends a sync with exit 1: try again


@dataclass
class OutageReport:
    seconds: float = 0.0
    operator_exit: int | None = None
    replica_syncs_stopped: int = 0

    def describe(self) -> str:
        return (
            f"Procurement outage of {self.seconds:.0f} s: the operator's sync exited "
            f"{self.operator_exit}, replicas' syncs stopped by the guard: "
            f"{self.replica_syncs_stopped}"
        )


def _stopped_syncs(stack: Stack) -> int:
    """How many times the live replicas logged that the guard stopped their sync."""
    return sum(
        r.process.stdout.count("sync.blocked") + r.process.stderr.count("sync.blocked")
        for r in stack.live()
        if r.process is not None
    )


def _settle(stack: Stack) -> list[str]:
    for replica in stack.replicas:  # one restarted just before must not meet it at its start
        replica.wait_ready(timeout=180)
    stack.emulator.emulator.notifier.flush(60)
    deadline = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < deadline:
        left = [p for p in checks.unsettled(stack) if p.startswith("inbox")]
        if not left:
            return []
        time.sleep(0.5)
    return [f"the backend did not settle before the outage: {left}"]


def procurement_outage(
    stack: Stack, folder: Path, faults: dict[str, Any]
) -> tuple[OutageReport, list[str]]:
    """Open the outage, run the syncs into it, close it; answers (figures, problems)."""
    report = OutageReport()
    problems = _settle(stack)
    if problems:
        return report, problems
    url = f"{stack.emulator.url}/emulator/v1/faults"
    forgetting = {**faults, "procurement": {**faults["procurement"], "forgetProviders": [PROVIDER]}}
    before = _stopped_syncs(stack)
    started = time.monotonic()
    httpx.put(url, json=forgetting, timeout=10).raise_for_status()
    try:
        for _ in range(OPERATOR_SYNC_TRIES):
            done = run_cli(["sync"], stack.env, timeout=300)
            report.operator_exit = done.returncode
            if done.returncode in (0, 2):
                break
        if done.returncode != 2 or "stopped before changing anything" not in done.stderr:
            problems.append(
                f"the operator's sync during the outage was not stopped by the guard: exit "
                f"{done.returncode}: {done.stdout[-500:]}{done.stderr[-500:]}"
            )
        deadline = time.monotonic() + REPLICA_SYNC_SECONDS
        while _stopped_syncs(stack) == before and time.monotonic() < deadline:
            time.sleep(0.5)
        report.replica_syncs_stopped = _stopped_syncs(stack) - before
    finally:
        httpx.put(url, json=faults, timeout=10).raise_for_status()
        report.seconds = time.monotonic() - started
    return report, problems
