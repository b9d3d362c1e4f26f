"""Metering benchmarks: ingestion records/s (HTTP and Python API) and the reporter's hour.

    python -m benchmarks metering [--entitlements 10000] [--http-batches 100] [--clients 4]
                                  [--runs 3] [--only http,python,reporter]

1. HTTP: the backend's web app (`create_app(bootstrap())`, uvicorn, one worker) runs in its own
   process on a fresh SQLite database with 1,000 active usage-billed entitlements; N client
   threads POST pre-serialised batches of 1,000 records to `/v1/usage`. Records/s is the number
   of accepted records over the wall time from the first request to the last answer.
2. Python API: `record_usage(container, batch)` in this process, batches of 1,000.
3. Reporter: `marketplace-emulator serve` in its own process holds N entitlements (auto-approved
   purchases); the same N are seeded straight into a fresh SQLite database with one record per
   metric, active from the next hour. `report_usage(now=that hour + 1 h + grace)` then closes and
   sends exactly one window per entitlement (check, then batched report); its wall time is timed.

Ingestion (1 and 2) is measured `--runs` times, each on a fresh database, and the median run is
kept (with every run's figure and the load average, as the machine is shared). The Python API's
figure is also given per second of this process's CPU time, which other work on the machine
disturbs less than wall time. `--only` measures some parts and keeps the others' last figures.
Figures are printed and written to `benchmarks/results/metering.json`.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks import RESULTS_DIR, machine
from benchmarks.emulator import emulator_server, free_port, stop, wait_for_port
from benchmarks.usage_http import TOKEN, post_batches

PROVIDER = "BENCH-provider"
PRODUCT = "example-product"
SERVICE = "example-product.endpoints.sandbox.cloud.goog"
BATCH = 1000
TARGET_HTTP_PER_SECOND = 25_000
TARGET_REPORT_SECONDS = 60.0


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PUBSUB_EMULATOR_HOST"}
    env.update(
        MARKETPLACE_SANDBOX="1",
        MARKETPLACE_PROVIDER_ID=PROVIDER,
        DATABASE_URL=database_url,
        USAGE_API_TOKENS=TOKEN,
        USAGE_GRACE_SECONDS="60",
        PROCUREMENT_API_ENDPOINT="http://127.0.0.1:9",  # never called by these benchmarks
        **extra,
    )
    return env


def _settings(database_url: str, **extra: str) -> Any:
    from marketplace_saas.config import Settings

    os.environ.update(_env(database_url, **extra))
    return Settings(_env_file=None)  # type: ignore[call-arg]


def _seed(database_url: str, entitlements: list[tuple[str, str]], active_since: datetime) -> None:
    """Entitlement rows as the lifecycle keeps them: (id, usageReportingId), on plan `basic`."""
    from marketplace_saas.adapters.db import migrate
    from marketplace_saas.adapters.db.engine import create_engine, session_factory
    from marketplace_saas.adapters.db.models import Entitlement

    migrate.upgrade(database_url)
    engine = create_engine(database_url)
    with session_factory(engine).begin() as session:
        session.add_all(
            Entitlement(
                id=entitlement_id,
                provider_id=PROVIDER,
                account_id=f"acct-{entitlement_id}",
                product=PRODUCT,
                plan="basic",
                state="ENTITLEMENT_ACTIVE",
                usage_reporting_id=urid,
                service_enabled=True,
                active_since=active_since,
                raw={},
            )
            for entitlement_id, urid in entitlements
        )
    engine.dispose()


def _batches(ids: list[str], count: int, start: datetime, tag: str) -> list[list[dict[str, Any]]]:
    batches = []
    for b in range(count):
        batches.append(
            [
                {
                    "id": f"{tag}-{b}-{n}",
                    "entitlement": ids[(b * BATCH + n) % len(ids)],
                    "metric": "requests" if n % 2 else "storage_gb",
                    "value": n % 7,
                    "time": (start + timedelta(seconds=n % 3000)).isoformat(),
                    "labels": {"resource_name": "db-1"},
                }
                for n in range(BATCH)
            ]
        )
    return batches


def serve_backend(database_url: str, port: int) -> None:
    """(In the server process.) The backend's web app on `port`."""
    import uvicorn

    from marketplace_saas.bootstrap import bootstrap
    from marketplace_saas.entrypoints.web.app import create_app

    container = bootstrap(_settings(database_url))
    uvicorn.run(create_app(container), host="127.0.0.1", port=port, log_level="warning")


def bench_http(workdir: Path, batches: int, clients: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(dir=workdir))  # a fresh database for every run
    database_url = f"sqlite:///{workdir / 'http.db'}"
    now = datetime.now(UTC)
    ids = [f"ent-{i}" for i in range(1000)]
    _seed(
        database_url,
        [(i, f"project_number:{n}") for n, i in enumerate(ids)],
        now - timedelta(days=1),
    )
    bodies = [
        json.dumps({"records": b}).encode()
        for b in _batches(ids, batches, now - timedelta(hours=1), "h")
    ]
    port = free_port()
    log = (workdir / "backend.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.metering", "--serve", database_url, str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(database_url),
        start_new_session=True,
    )
    try:
        if not wait_for_port(port, 60):
            raise RuntimeError(f"the backend did not start; see {workdir / 'backend.log'}")
        run = post_batches([f"http://127.0.0.1:{port}/v1/usage"], bodies, clients)
    finally:
        stop(process)
        log.close()
    return {
        "records": run.accepted,
        "batches": batches,
        "batch_size": BATCH,
        "clients": clients,
        "seconds": round(run.seconds, 3),
        "records_per_second": run.records_per_second,
        "batch_p50_ms": run.p50_ms,
        "batch_p99_ms": run.p99_ms,
        "target_records_per_second": TARGET_HTTP_PER_SECOND,
    }


def bench_python(workdir: Path, batches: int) -> dict[str, Any]:
    from marketplace_saas.bootstrap import bootstrap
    from marketplace_saas.service.metering.ingest import record_usage

    workdir = Path(tempfile.mkdtemp(dir=workdir))  # a fresh database for every run
    database_url = f"sqlite:///{workdir / 'python.db'}"
    now = datetime.now(UTC)
    ids = [f"ent-{i}" for i in range(1000)]
    _seed(
        database_url,
        [(i, f"project_number:{n}") for n, i in enumerate(ids)],
        now - timedelta(days=1),
    )
    data = _batches(ids, batches, now - timedelta(hours=1), "p")
    container = bootstrap(_settings(database_url))
    record_usage(container, [])
    started, cpu = time.perf_counter(), time.process_time()
    accepted = sum(record_usage(container, batch).accepted for batch in data)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    container.close()
    return {
        "records": accepted,
        "batch_size": BATCH,
        "seconds": round(elapsed, 3),
        "records_per_second": round(accepted / elapsed),
        "records_per_cpu_second": round(accepted / cpu),
    }


def median_run(runs: int, measure: Any) -> dict[str, Any]:
    """`measure()` `runs` times; the median run, by records/s, with every run's figure."""
    results = []
    for _ in range(runs):
        result = measure()
        result["load_average"] = round(os.getloadavg()[0], 2)
        results.append(result)
    results.sort(key=lambda r: r["records_per_second"])
    median = dict(results[(len(results) - 1) // 2])
    median["runs"] = [r["records_per_second"] for r in results]
    median["median_records_per_second"] = round(
        statistics.median(r["records_per_second"] for r in results)
    )
    return median


def purchases(emulator_url: str, count: int) -> list[tuple[str, str]]:
    """`count` auto-approved usage-billed purchases: (entitlement id, usageReportingId)."""
    with httpx.Client(base_url=emulator_url, timeout=60) as http:
        http.put(
            f"/emulator/v1/providers/{PROVIDER}/products/{PRODUCT}",
            json={
                "serviceName": SERVICE,
                "autoApprove": True,
                "plans": {
                    "basic": {
                        "usageBilled": True,
                        "metrics": ["basic_requests", "basic_storage_gb"],
                    }
                },
            },
        ).raise_for_status()
        entitlements = []
        for _ in range(count):
            response = http.post(
                f"/emulator/v1/providers/{PROVIDER}/purchases",
                json={"product": PRODUCT, "plan": "basic"},
            )
            response.raise_for_status()
            entitlement = response.json()["entitlement"]
            entitlements.append(
                (entitlement["name"].rsplit("/", 1)[1], entitlement["usageReportingId"])
            )
    return entitlements


def one_record_per_metric(
    entitlements: list[tuple[str, str]], hour: datetime
) -> list[dict[str, Any]]:
    """One record per entitlement and metric, five minutes into `hour`."""
    return [
        {
            "id": f"r-{e}-{m}",
            "entitlement": e,
            "metric": m,
            "value": 3,
            "time": (hour + timedelta(minutes=5)).isoformat(),
        }
        for e, _ in entitlements
        for m in ("requests", "storage_gb")
    ]


def bench_reporter(workdir: Path, count: int) -> dict[str, Any]:
    from marketplace_saas.bootstrap import bootstrap
    from marketplace_saas.domain.usage import floor_hour
    from marketplace_saas.service.metering.ingest import record_usage
    from marketplace_saas.service.metering.report import report_usage

    database_url = f"sqlite:///{workdir / 'reporter.db'}"
    with emulator_server(workdir / "emulator.log") as emulator_url:
        entitlements = purchases(emulator_url, count)
        hour = floor_hour(datetime.now(UTC)) + timedelta(hours=1)
        _seed(database_url, entitlements, hour)
        settings = _settings(database_url, SERVICE_CONTROL_API_ENDPOINT=emulator_url)
        container = bootstrap(settings, clock=lambda: hour + timedelta(minutes=30))
        records = one_record_per_metric(entitlements, hour)
        for i in range(0, len(records), BATCH):
            record_usage(container, records[i : i + BATCH])
        started = time.perf_counter()
        summary = report_usage(container, now=hour + timedelta(hours=1, minutes=2))
        elapsed = time.perf_counter() - started
        container.close()
        with httpx.Client(base_url=emulator_url, timeout=120) as http:
            reports = http.get(f"/emulator/v1/services/{SERVICE}/reports").json()["reports"]
    return {
        "entitlements": count,
        "metrics_per_entitlement": 2,
        "windows": summary.closed,
        "accepted": summary.accepted,
        "accepted_by_emulator": len(reports),
        "failed": summary.failed,
        "seconds": round(elapsed, 3),
        "target_seconds": TARGET_REPORT_SECONDS,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks metering")
    parser.add_argument("--entitlements", type=int, default=10_000)
    parser.add_argument("--http-batches", type=int, default=100)
    parser.add_argument("--python-batches", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="ingestion runs (the median is kept)")
    parser.add_argument("--only", default="http,python,reporter", help="parts to measure")
    parser.add_argument(
        "--serve", nargs=2, metavar=("DATABASE_URL", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve_backend(args.serve[0], int(args.serve[1]))
        return 0
    parts = set(args.only.split(","))
    path = RESULTS_DIR / "metering.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = machine()
    results["machine"]["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-metering-") as folder:
        workdir = Path(folder)
        if "http" in parts:
            results["http"] = median_run(
                args.runs, lambda: bench_http(workdir, args.http_batches, args.clients)
            )
            print(f"HTTP ingestion: {results['http']['runs']} records/s", flush=True)
        if "python" in parts:
            results["python_api"] = median_run(
                args.runs, lambda: bench_python(workdir, args.python_batches)
            )
            print(f"Python API: {results['python_api']['runs']} records/s", flush=True)
        if "reporter" in parts:
            results["reporter"] = bench_reporter(workdir, args.entitlements)
            print(
                f"Reporter: {results['reporter']['entitlements']:,} entitlements, "
                f"{results['reporter']['accepted']:,} windows accepted in "
                f"{results['reporter']['seconds']} s",
                flush=True,
            )
    for part, section in (("http", "http"), ("python", "python_api"), ("reporter", "reporter")):
        if part in parts:  # which commit each section was measured at (--only keeps the others)
            results[section]["commit"] = results["machine"]["commit"]
            results[section]["date"] = results["machine"]["date"]
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
