"""Replicas on PostgreSQL: listeners, `POST /v1/usage` servers and reporters, 1 against N.

    python -m benchmarks replicas [--rounds 2] [--only lifecycle,http,reporter]
                                  [--changes 1000] [--http-batches 100] [--entitlements 10000]

Every configuration is measured `--rounds` times, in alternation (round k runs each in turn,
the order rotated each round), each on a fresh database; the median is kept with every run.

1. Lifecycle (`benchmarks.lifecycle.end_to_end`): SQLite with 1 listener, PostgreSQL with 1 and
   with 3 listener processes on one subscription; 2 x `--changes` notifications each.
2. `POST /v1/usage` on SQLite with 1 backend process (the baseline under the same load) and on
   PostgreSQL with 1 and 2 (uvicorn, one worker each); 4 client threads spread batches of 1,000
   records over the replicas (`benchmarks.usage_http`). Each run also gives the CPU time per
   record of the clients, of each server process and of PostgreSQL (the database's backends,
   and the server's shared processes).
3. The reporter on PostgreSQL: 1 and 3 `report_usage` processes started together on one database
   holding `--entitlements` entitlements x 2 metrics, one window each; the wall time from their
   start until the last one ends. Each run gets a clone of one seeded database.

The database server, the emulators, the clients and the measured processes share the machine:
the figures are written with its load average (`benchmarks/results/replicas.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks import RESULTS_DIR, machine
from benchmarks import metering as m
from benchmarks.emulator import free_port, stop, wait_for_port
from benchmarks.usage_http import HEADERS, cpu_seconds, post_batches

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/postgres")


@contextmanager
def pg_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (optionally a copy of `template`), dropped afterwards."""
    import sqlalchemy as sa

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    clause = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{clause}'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def alternate(configs: list[Any], rounds: int, run: Callable[[Any], dict[str, Any]]) -> list[Any]:
    """Each config `rounds` times, in turn, the order rotated every round."""
    results: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(configs))}
    for r in range(rounds):
        order = list(range(len(configs)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            result = run(configs[i])
            result["load_average"] = round(os.getloadavg()[0], 2)
            print(json.dumps(result), flush=True)
            results[i].append(result)
    return [results[i] for i in range(len(configs))]


def _summary(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return {"median": statistics.median(r[key] for r in runs), "runs": runs}


# -- 1. lifecycle --------------------------------------------------------------------------------


def bench_lifecycle(folder: Path, changes: int, rounds: int) -> dict[str, Any]:
    from benchmarks.emulator import pubsub_emulator
    from benchmarks.lifecycle import bare_ack_rate, end_to_end

    configs = [("sqlite", 1), ("postgresql", 1), ("postgresql", 3)]
    with pubsub_emulator(folder / "pubsub-emulator.log") as host:
        if host is None:
            return {"skipped": "the Cloud Pub/Sub emulator (or Java) is not installed"}
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        bare_ack_rate(2000, 100)  # warm the JVM; not measured

        def run(config: tuple[str, int]) -> dict[str, Any]:
            kind, listeners = config
            where = Path(tempfile.mkdtemp(dir=folder))
            if kind == "sqlite":
                return end_to_end(1000, changes, where, host, listeners)
            with pg_database() as url:
                return end_to_end(1000, changes, where, host, listeners, database_url=url)

        results = alternate(configs, rounds, run)
    out = {}
    for (kind, listeners), runs in zip(configs, results, strict=True):
        key = f"{kind}_{listeners}_listener{'s' if listeners > 1 else ''}"
        out[key] = {
            "notifications_per_second": _summary(runs, "notifications_per_second")["median"],
            "listener_cpu_ms_per_notification": statistics.median(
                r["listener_cpu_ms_per_notification"] for r in runs
            ),
            # every process of the run (listeners, emulators, PostgreSQL's backends): medians
            "cpu_ms_per_notification_by_process": {
                name: statistics.median(r["cpu_ms_per_notification_by_process"][name] for r in runs)
                for name in runs[0]["cpu_ms_per_notification_by_process"]
            },
            "runs": runs,
        }
    return out


# -- 2. POST /v1/usage ----------------------------------------------------------------------------


@contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{Path(tempfile.mkdtemp(dir=folder)) / 'usage.db'}"
        return
    with pg_database() as url:
        yield url


def _postgres_cpu(url: str) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the PostgreSQL processes: the backends of `url`'s database, and the
    server's shared processes (WAL writer, checkpointer, ...; other databases' work counts there
    too)."""
    import sqlalchemy as sa

    admin = sa.create_engine(ADMIN_URL)
    try:
        with admin.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pid, datname IS NOT NULL FROM pg_stat_activity WHERE datname = :name "
                    "OR (datname IS NULL AND backend_type <> 'client backend')"
                ),
                {"name": url.rsplit("/", 1)[1]},
            ).all()
    finally:
        admin.dispose()
    out: dict[str, dict[int, float]] = {"backends": {}, "shared": {}}
    for pid, ours in rows:
        out["backends" if ours else "shared"][pid] = cpu_seconds(pid)
    return out


def _http_run(kind: str, replicas: int, batches: int, clients: int, folder: Path) -> dict[str, Any]:
    now = datetime.now(UTC)
    ids = [f"ent-{i}" for i in range(1000)]
    with _database(kind, folder) as url:
        m._seed(url, [(i, f"project_number:{n}") for n, i in enumerate(ids)], now - timedelta(1))
        bodies = [
            json.dumps({"records": b}).encode()
            for b in m._batches(ids, batches, now - timedelta(hours=1), "h")
        ]
        ports = [free_port() for _ in range(replicas)]
        log = (folder / f"backend-{uuid.uuid4().hex[:6]}.log").open("wb")
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.metering", "--serve", url, str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=m._env(url),
                start_new_session=True,
            )
            for port in ports
        ]
        try:
            for port in ports:
                if not wait_for_port(port, 120):
                    raise RuntimeError(f"a backend did not start; see {log.name}")
            urls = [f"http://127.0.0.1:{p}/v1/usage" for p in ports]
            for target in urls:  # warm each replica (and its pool) before its CPU is counted
                httpx.post(target, content=b'{"records": []}', headers=HEADERS, timeout=60)
            servers = [cpu_seconds(p.pid) for p in processes]
            database = _postgres_cpu(url) if kind == "postgresql" else {}
            run = post_batches(urls, bodies, clients)
            servers = [cpu_seconds(p.pid) - s for p, s in zip(processes, servers, strict=True)]
            if database:
                after = _postgres_cpu(url)
                database = {
                    part: {pid: cpu - database[part].get(pid, 0.0) for pid, cpu in pids.items()}
                    for part, pids in after.items()
                }
        finally:
            for process in processes:
                stop(process)
            log.close()

    def per_record(seconds: float) -> float:  # CPU microseconds per accepted record
        return round(1e6 * seconds / max(run.accepted, 1), 1)

    cpu = {
        "client": per_record(run.cpu_seconds),
        "servers": [per_record(s) for s in servers],
    }
    if database:
        cpu["postgres_backends"] = per_record(sum(database["backends"].values()))
        cpu["postgres_shared"] = per_record(sum(database["shared"].values()))
    return {
        "database": kind,
        "replicas": replicas,
        "records": run.accepted,
        "seconds": round(run.seconds, 3),
        "records_per_second": run.records_per_second,
        "cpu_us_per_record": cpu,
    }


def bench_http(folder: Path, batches: int, rounds: int) -> dict[str, Any]:
    configs = [("sqlite", 1), ("postgresql", 1), ("postgresql", 2)]
    results = alternate(configs, rounds, lambda c: _http_run(*c, batches, 4, folder))
    out: dict[str, Any] = {"target_records_per_second": m.TARGET_HTTP_PER_SECOND}
    for (kind, replicas), runs in zip(configs, results, strict=True):
        out[f"{kind}_{replicas}_replica{'s' if replicas > 1 else ''}"] = _summary(
            runs, "records_per_second"
        )
    return out


# -- 3. the reporter ------------------------------------------------------------------------------

_REPORT = """
import json, sys
from datetime import datetime
from benchmarks import metering as m
from marketplace_saas.bootstrap import bootstrap
from marketplace_saas.service.metering.report import report_usage
url, endpoint, now = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
container = bootstrap(m._settings(url, SERVICE_CONTROL_API_ENDPOINT=endpoint), clock=lambda: now)
print("ready", flush=True)
sys.stdin.readline()  # "go": every reporter starts at once, after its start-up
s = report_usage(container, now=now)
print(json.dumps({"closed": s.closed, "accepted": s.accepted, "failed": s.failed}))
"""


def _reporter_run(template: str, endpoint: str, now: datetime, replicas: int) -> dict[str, Any]:
    with pg_database(template) as url:
        command = [sys.executable, "-c", _REPORT, url, endpoint, now.isoformat()]
        processes = [
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(replicas)
        ]
        for process in processes:
            assert process.stdout is not None
            while (line := process.stdout.readline()).strip() != "ready":
                if not line:
                    raise RuntimeError("a reporter process ended before it was ready")
        started = time.perf_counter()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [
            json.loads(p.communicate(timeout=1800)[0].strip().splitlines()[-1]) for p in processes
        ]
        elapsed = time.perf_counter() - started
    return {
        "replicas": replicas,
        "seconds": round(elapsed, 2),
        "windows_closed": sum(o["closed"] for o in outputs),
        "accepted": sum(o["accepted"] for o in outputs),
        "accepted_per_replica": [o["accepted"] for o in outputs],
        "failed": any(o["failed"] for o in outputs),
    }


def bench_reporter(folder: Path, count: int, rounds: int) -> dict[str, Any]:
    from marketplace_saas.bootstrap import bootstrap
    from marketplace_saas.domain.usage import floor_hour
    from marketplace_saas.service.metering.ingest import record_usage

    with m.emulator_server(folder / "emulator.log") as endpoint, pg_database() as template:
        entitlements = m.purchases(endpoint, count)
        hour = floor_hour(datetime.now(UTC)) + timedelta(hours=1)
        m._seed(template, entitlements, hour)
        container = bootstrap(m._settings(template), clock=lambda: hour + timedelta(minutes=30))
        records = m.one_record_per_metric(entitlements, hour)
        for i in range(0, len(records), m.BATCH):
            record_usage(container, records[i : i + m.BATCH])
        container.close()
        now = hour + timedelta(hours=1, minutes=2)
        results = alternate([1, 3], rounds, lambda n: _reporter_run(template, endpoint, now, n))
    out: dict[str, Any] = {"entitlements": count, "metrics_per_entitlement": 2}
    for replicas, runs in zip([1, 3], results, strict=True):
        out[f"postgresql_{replicas}_reporter{'s' if replicas > 1 else ''}"] = _summary(
            runs, "seconds"
        )
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks replicas")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="lifecycle,http,reporter")
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--http-batches", type=int, default=100)
    parser.add_argument("--entitlements", type=int, default=10_000)
    args = parser.parse_args(argv)
    from marketplace_saas.adapters.logging import configure_logging

    configure_logging(level="WARNING")
    output = RESULTS_DIR / "replicas.json"
    result: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    result.update(machine=machine(), load_average_before=os.getloadavg(), rounds=args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        folder = Path(tmp)
        parts = args.only.split(",")
        if "lifecycle" in parts:
            result["lifecycle"] = bench_lifecycle(folder, args.changes, args.rounds)
        if "http" in parts:
            result["usage_http"] = bench_http(folder, args.http_batches, args.rounds)
        if "reporter" in parts:
            result["reporter"] = bench_reporter(folder, args.entitlements, args.rounds)
    result["load_average_after"] = os.getloadavg()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
