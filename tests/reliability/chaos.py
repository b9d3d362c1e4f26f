"""The chaos run: a seeded marketplace against N replicas killed at random, then the proof.

    config = RunConfig.from_env(events=300, kill_every=None)   # RELIABILITY_SEED replays a run
    report = run_chaos(database_url, pubsub_host, folder, config)
    assert not report.problems, report.describe()

The run: the stack of `stack.py`; emulator faults (Procurement errors, duplicate and reordered
notifications); a cohort of entitlements bought first and left alone, which receive usage from
one thread per replica for the whole run; `events` customer actions; replicas SIGKILLed and
restarted; then, after the last kill, a bounded wait until nothing is left to do, the usage
reported by concurrent `report-usage` runs (one of them killed), and the checks of `checks.py`.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tests.integration.backend.process_support import Process, run_cli
from tests.reliability import checks
from tests.reliability.marketplace import Marketplace, UsageFeed
from tests.reliability.outage import OutageReport, procurement_outage
from tests.reliability.stack import (
    INBOX_RESUME_AFTER_SECONDS,
    Stack,
    chaos_stack,
    resumed_events,
)

PROCUREMENT_ERROR_RATE = 0.2


@dataclass(frozen=True)
class RunConfig:
    seed: int
    events: int
    kills: int  # how many replicas are killed over the run
    replicas: int = 3
    policy: str = "signup"  # APPROVAL_POLICY of every replica
    stable: int = 6  # entitlements that receive usage
    converge_seconds: float = 240.0
    outage: bool = True  # a Procurement outage three quarters through the events (outage.py)
    sync_seconds: int = 20  # SYNC_INTERVAL_SECONDS of every replica

    @classmethod
    def from_env(cls, **values: Any) -> RunConfig:
        seed = int(os.environ.get("RELIABILITY_SEED") or random.SystemRandom().randrange(10**9))
        return cls(seed=seed, **values)


@dataclass
class Report:
    config: RunConfig
    actions: dict[str, int] = field(default_factory=dict)
    kills: int = 0
    faults: int = 0
    notifications: dict[str, int] = field(default_factory=dict)
    usage_records: int = 0
    operations: int = 0
    hooks: int = 0
    converge_seconds: float | None = None
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    outage: OutageReport | None = None
    exits: list[str] = field(default_factory=list)  # replicas that exited by themselves
    resumed: list[str] = field(default_factory=list)  # "eventId (delivered N times)" each
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        c = self.config
        lines = [
            f"chaos run RELIABILITY_SEED={c.seed}: {c.events} events, {c.replicas} replicas, "
            f"APPROVAL_POLICY={c.policy}",
            f"  actions: {dict(sorted(self.actions.items()))}",
            f"  replicas killed: {self.kills}; Procurement/Service Control faults injected: "
            f"{self.faults}; notifications: {self.notifications}",
            f"  usage records ingested: {self.usage_records}; operations accepted: "
            f"{self.operations}; hooks received: {self.hooks}",
            f"  converged {self.converge_seconds and round(self.converge_seconds, 1)} s after "
            f"the last kill; the whole run took {self.seconds:.0f} s "
            f"({', '.join(f'{k} {v:.0f} s' for k, v in self.phases.items())})",
        ]
        if self.outage is not None:
            lines.append(f"  {self.outage.describe()}")
        if self.resumed:
            lines.append(
                f"  notifications still unsettled {INBOX_RESUME_AFTER_SECONDS} s after they "
                f"arrived, processed from the inbox by the replicas' inbox job: "
                f"{len(self.resumed)} ({', '.join(self.resumed[:5])})"
            )
        if self.exits:
            lines.append(f"  replicas that exited by themselves (restarted): {len(self.exits)}")
            lines.append(f"    the last: {self.exits[-1].strip()[-300:]}")
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        return "\n".join(lines)


def _count_faults(stack: Stack) -> list[int]:
    """Wrap the emulator's fault draw so the run can say how many faults it injected."""
    faults = stack.emulator.emulator.faults
    counted = [0]
    draw = faults.injected_status

    def counting(api: Any) -> int | None:
        status = draw(api)
        counted[0] += status is not None
        return status

    faults.injected_status = counting  # type: ignore[method-assign]
    return counted


def _set_faults(stack: Stack, seed: int) -> dict[str, Any]:
    faults = {
        "seed": seed,
        "procurement": {"errorRate": PROCUREMENT_ERROR_RATE, "statuses": [429, 500, 503]},
        "servicecontrol": {"errorRate": 0.1, "statuses": [503]},
        "notifications": {"duplicateRate": 0.2, "reorder": True},
    }
    httpx.put(
        f"{stack.emulator.url}/emulator/v1/faults", json=faults, timeout=10
    ).raise_for_status()
    return faults


def _wait(condition: Any, what: str, timeout: float, say: Any = None) -> None:
    deadline = time.monotonic() + timeout
    told = time.monotonic()
    while time.monotonic() < deadline:
        if condition():
            return
        if say is not None and time.monotonic() - told > 15:
            told = time.monotonic()
            print(f"  waiting for {what}: {say()}", flush=True)
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _all_active(stack: Stack, ids: list[str]) -> bool:
    engine = sa.create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT count(*) FROM entitlements WHERE state = 'ENTITLEMENT_ACTIVE' "
                    "AND id IN :ids"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": ids},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(found) == len(ids)


def _converged(stack: Stack, market: Marketplace) -> list[str]:
    return (
        checks.unsettled(stack)
        + checks.records_match_api(stack, market.accounts + market.gone, market.entitlements)
        + checks.hooks_delivered_in_order(stack)
    )


def _count_arrivals(stack: Stack) -> list[str]:
    """Every operation Service Control records or finds already recorded, in arrival order (a
    window sent twice arrives twice, even though the ledger counts it once)."""
    servicecontrol = stack.emulator.emulator.servicecontrol
    arrivals: list[str] = []
    report_one = servicecontrol._report_one

    def counting(service_name: str, op: Any) -> None:
        report_one(service_name, op)
        arrivals.append(op.operation_id)

    servicecontrol._report_one = counting  # type: ignore[method-assign]
    return arrivals


def _report_usage(stack: Stack, folder: Path, rng: random.Random, arrivals: list[str]) -> list[str]:
    """One `report-usage` SIGKILLed mid-run; then three at once, none of which may send a
    window another one sends; then runs until one exits 0."""
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    args = ["report-usage", "--once", "--allow-future", "--now", later]
    killed = Process(args, stack.env, folder, "report-killed")
    time.sleep(rng.uniform(0.5, 3.0))
    killed.popen.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    before = len(arrivals)
    runs = [Process(args, stack.env, folder, f"report-{i}") for i in range(3)]
    for run in runs:
        run.wait(timeout=300)
    concurrent = Counter(arrivals[before:])
    problems = [
        f"operationId {op} sent {n} times by concurrent reporters"
        for op, n in concurrent.items()
        if n > 1
    ][: checks.MAX_SHOWN]
    for _ in range(10):
        done = run_cli(args, stack.env, timeout=300)
        if done.returncode == 0:
            return problems
    return [*problems, f"report-usage still failing: {done.stdout[-2000:]}{done.stderr[-2000:]}"]


def run_chaos(database_url: str, pubsub_host: str, folder: Path, config: RunConfig) -> Report:
    print(f"\nchaos run: RELIABILITY_SEED={config.seed} (set it to replay this run)", flush=True)
    started = time.monotonic()
    rng = random.Random(config.seed)
    report = Report(config)
    with chaos_stack(
        database_url,
        pubsub_host,
        folder,
        replicas=config.replicas,
        policy=config.policy,
        sync_seconds=config.sync_seconds,
    ) as stack:
        mark = time.monotonic()

        def phase(name: str) -> None:
            nonlocal mark
            report.phases[name] = time.monotonic() - mark
            mark = time.monotonic()

        phase("start")
        counted = _count_faults(stack)
        arrivals = _count_arrivals(stack)
        faults = _set_faults(stack, config.seed)
        market = Marketplace(stack, rng)
        for _ in range(config.stable):
            account = market.buy(stable=True)
            if config.policy == "signup":
                market.unsigned.remove(account)
                assert market.sign_up(account), "the usage cohort could not sign up"
        _wait(lambda: _all_active(stack, market.stable), "the usage cohort's approval", 120)
        phase("cohort")
        feed = UsageFeed(stack, market.stable, config.seed)
        feed.start()
        kill_at = {round(config.events * (i + 1) / (config.kills + 1)) for i in range(config.kills)}
        outage_at = config.events * 3 // 4 if config.outage else None
        for event in range(config.events):
            market.act(signups=config.policy == "signup")
            if event in kill_at:
                stack.kill_and_restart(rng)
            if event == outage_at:
                report.outage, problems = procurement_outage(stack, folder, faults)
                report.problems += problems
        feed.finish()
        phase("events")
        for replica in stack.replicas:
            replica.wait_ready(timeout=180)
        report.exits = [e for r in stack.replicas for e in r.exits]
        stack.emulator.emulator.notifier.flush(120)
        last_kill = stack.last_kill or time.monotonic()
        left: list[str] = []

        def converged() -> bool:
            nonlocal left
            left = _converged(stack, market)
            return not left

        try:
            _wait(converged, "convergence", config.converge_seconds, lambda: left[:5])
            report.converge_seconds = time.monotonic() - last_kill
        except AssertionError as exc:
            report.problems += [str(exc), *left[: checks.MAX_SHOWN]]
        report.problems += checks.hooks_tell_the_true_story(stack, market.entitlements)
        report.problems += checks.versions_never_go_back(stack)
        phase("converge")
        report.problems += _report_usage(stack, folder, rng, arrivals)
        phase("report")
        problems, report.operations = checks.ledger_matches_usage(stack, feed.ingested)
        report.problems += problems
        report.actions = dict(market.actions)
        report.phases.update(market.seconds)
        report.kills = stack.kills
        report.faults = counted[0]
        stats = stack.emulator.emulator.notifier.stats()
        report.notifications = {
            "published": stats.published,
            "duplicated": stats.duplicated,
            "delivered": stats.delivered,
        }
        report.usage_records = len(feed.ingested)
        report.hooks = len(stack.receiver.received)
        report.resumed = resumed_events(folder)
    report.seconds = time.monotonic() - started
    print(report.describe(), flush=True)
    return report
