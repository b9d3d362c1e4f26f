"""Console benchmark: the entitlements list and the overview over 100,000 entitlements (SQLite).

    python -m benchmarks admin [--entitlements 100000] [--rounds 30]

A fresh SQLite database is migrated to head and seeded with bulk inserts: N entitlements over
N/5 accounts and customers (states, products and plans mixed), N/2 inbox rows over the last two
days, N/4 usage reports. Then, for each case, the median and p95 server time of R requests to
the real app (FastAPI's TestClient in-process: routing, sign-in check, queries, template) and of
the query alone. Figures are printed and written to `benchmarks/results/admin.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks import RESULTS_DIR, machine
from marketplace_saas.adapters.db import migrate
from marketplace_saas.adapters.db.models import (
    Account,
    Customer,
    Entitlement,
    InboxMessage,
    UsageReport,
)
from marketplace_saas.adapters.operators import hash_password
from marketplace_saas.bootstrap import bootstrap
from marketplace_saas.config import Settings
from marketplace_saas.service.console import records as queries

TARGET_MS = 200.0
PASSWORD = "benchmark-password"  # a throwaway operator for this run
STATES = [
    ("ENTITLEMENT_ACTIVE", 70),
    ("ENTITLEMENT_CANCELLED", 15),
    ("ENTITLEMENT_PENDING_CANCELLATION", 5),
    ("ENTITLEMENT_ACTIVATION_REQUESTED", 4),
    ("ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL", 3),
    ("ENTITLEMENT_SUSPENDED", 3),
]
PRODUCTS = ["example-product", "analytics-suite", "storage-plus"]
PLANS = ["basic", "pro", "enterprise"]
CHUNK = 5000


def _state(i: int) -> str:
    slot = i % 100
    for state, share in STATES:
        if slot < share:
            return state
        slot -= share
    return STATES[0][0]


def _insert(engine: sa.Engine, model: Any, rows: list[dict[str, Any]]) -> None:
    table = model.__table__
    with engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            conn.execute(table.insert(), rows[start : start + CHUNK])


def seed(engine: sa.Engine, n: int, now: datetime) -> None:
    accounts = max(1, n // 5)
    _insert(
        engine,
        Customer,
        [
            {
                "id": f"c{i:07d}",
                "name": f"Customer {i}",
                "company": f"Company {i % 997}",
                "email": f"c{i}@example.com",
                "signup_data": {},
                "created_at": now,
                "updated_at": now,
            }
            for i in range(accounts)
        ],
    )
    _insert(
        engine,
        Account,
        [
            {
                "id": f"acct-{i:07d}",
                "provider_id": "BENCH",
                "customer_id": f"c{i:07d}",
                "state": "ACCOUNT_ACTIVE",
                "signup_approval": "APPROVED" if i % 50 else "PENDING",
                "approvals": {},
                "created_at": now,
                "updated_at": now,
            }
            for i in range(accounts)
        ],
    )
    _insert(
        engine,
        Entitlement,
        [
            {
                "id": f"ent-{i:08d}",
                "provider_id": "BENCH",
                "account_id": f"acct-{i % accounts:07d}",
                "product": PRODUCTS[i % 3],
                "plan": PLANS[(i // 3) % 3],
                "state": _state(i),
                "service_enabled": True,
                "raw": {},
                "created_at": now,
                "updated_at": now,
            }
            for i in range(n)
        ],
    )
    _insert(
        engine,
        InboxMessage,
        [
            {
                "event_id": f"ev-{i:08d}",
                "event_type": "ENTITLEMENT_ACTIVE",
                "payload": "{}",
                "subject_kind": "entitlement",
                "subject_id": f"ent-{i % n:08d}",
                "status": "parked" if i % 97 == 0 else "processed",
                "source": "pull",
                "attempts": 1,
                "deliveries": 1,
                "received_at": now - timedelta(seconds=i * 3),
            }
            for i in range(n // 2)
        ],
    )
    _insert(
        engine,
        UsageReport,
        [
            {
                "operation_id": f"op-{i:08d}",
                "entitlement_id": f"ent-{i % n:08d}",
                "consumer_id": "project:bench",
                "plan": "basic",
                "window_start": now - timedelta(hours=i % 48 + 1),
                "window_end": now - timedelta(hours=i % 48),
                "metric_values": {},
                "user_labels": {},
                "status": "rejected" if i % 101 == 0 else "accepted",
                "attempts": 1,
                "created_at": now,
            }
            for i in range(n // 4)
        ],
    )
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))


def measure(call: Callable[[], object], rounds: int) -> dict[str, float]:
    call()  # warm-up
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 2),
        "max_ms": round(samples[-1], 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks admin")
    parser.add_argument("--entitlements", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)

    from fastapi.testclient import TestClient

    from marketplace_saas.entrypoints.web.app import create_app

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate.upgrade(url)
        settings = Settings(
            _env_file=None,
            database_url=url,
            marketplace_sandbox=True,
            admin_operators=f"bench:viewer:{hash_password(PASSWORD)}",
        )
        container = bootstrap(settings)
        started = time.perf_counter()
        seed(container.engine, args.entitlements, now)
        seeded_s = time.perf_counter() - started
        print(f"seeded {args.entitlements:,} entitlements in {seeded_s:.1f} s", flush=True)

        def query(fn: Callable[..., object], **kwargs: Any) -> Callable[[], object]:
            def run() -> object:
                with container.console() as reads:
                    return fn(reads, **kwargs)

            return run

        results: dict[str, Any] = {}
        with TestClient(create_app(container)) as client:
            login = client.get("/admin/login").text
            token = login.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            client.post(
                "/admin/login",
                data={"name": "bench", "password": PASSWORD, "csrf_token": token},
                follow_redirects=False,
            )
            middle = f"ent-{args.entitlements // 2:08d}"

            def get(path: str) -> Callable[[], object]:
                def run() -> object:
                    answer = client.get(path)
                    assert answer.status_code == 200, (path, answer.status_code)
                    return answer

                return run

            cases: dict[str, Callable[[], object]] = {
                "page: /admin (overview)": get("/admin"),
                "page: /admin/entitlements": get("/admin/entitlements"),
                "page: /admin/entitlements?state=ACTIVATION_REQUESTED": get(
                    "/admin/entitlements?state=ENTITLEMENT_ACTIVATION_REQUESTED"
                ),
                "page: /admin/entitlements (page from the middle)": get(
                    f"/admin/entitlements?after={middle}"
                ),
                "page: /admin/entitlements?product=...&plan=...": get(
                    "/admin/entitlements?product=storage-plus&plan=enterprise"
                ),
                "api: /api/v1/entitlements": get("/api/v1/entitlements"),
                "query: overview": query(queries.overview, now=now),
                "query: list_entitlements": query(queries.list_entitlements),
                "query: filter_choices": query(queries.filter_choices),
            }
            for name, call in cases.items():
                results[name] = measure(call, args.rounds)
                print(f"  {name:58s} {results[name]}", flush=True)
        container.close()

    worst = max(results[k]["median_ms"] for k in results if k.startswith("page: /admin"))
    report = {
        "machine": machine(),
        "entitlements": args.entitlements,
        "rounds": args.rounds,
        "seed_seconds": round(seeded_s, 1),
        "target_ms": TARGET_MS,
        "results": results,
        "worst_page_median_ms": worst,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "admin.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"worst page median: {worst} ms (target {TARGET_MS:g} ms)")
    return 0
