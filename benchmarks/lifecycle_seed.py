"""The lifecycle benchmark's two seeded sides: the Marketplace emulator (a child process that
buys and approves N customers' entitlements, then serves and publishes) and the backend's SQLite
database (the same customers, bulk-inserted). Used by `benchmarks.lifecycle`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.emulator import free_port, stop, wait_for_port

PROVIDER = "DEMO-bench"
PRODUCT = "example-product"


# -- the Marketplace emulator, seeded in its own process ------------------------------------------


def serve_seeded_emulator(port: int, customers: int, seed_file: Path) -> None:
    """Run in a child process: seed `customers` active entitlements, then serve and publish.

    Seeding goes straight to the emulator's Procurement backend with notifications recorded
    only; then the notifier (Pub/Sub, from PUBSUB_EMULATOR_HOST) takes over, so only what
    happens after seeding reaches the subscription.
    """
    from marketplace_emulator.events import RecordingSink
    from marketplace_emulator.server import Emulator, run_in_thread

    emulator = Emulator(sink=RecordingSink(), providers=[PROVIDER])
    procurement = emulator.procurement
    accounts: list[dict[str, Any]] = []
    entitlements: list[dict[str, Any]] = []
    for n in range(customers):
        account, entitlement = procurement.purchase(PROVIDER, PRODUCT, ("basic", "pro")[n % 2])
        procurement.approve_account(PROVIDER, account.id, "signup")
        procurement.approve_entitlement(PROVIDER, entitlement.id)
        accounts.append(procurement.get_account(PROVIDER, account.id).to_json())
        entitlements.append(procurement.get_entitlement(PROVIDER, entitlement.id).to_json())
    emulator.recorder.clear()
    emulator.sink.target = emulator.notifier
    seed_file.write_text(json.dumps({"accounts": accounts, "entitlements": entitlements}))
    running = run_in_thread(emulator, port=port)
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        running.stop()


@contextmanager
def seeded_emulator(customers: int, folder: Path, pubsub_host: str) -> Iterator[tuple[str, Path]]:
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    seed_file = folder / f"seed-{customers}.json"
    log = (folder / f"emulator-{customers}.log").open("wb")
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_host}
    code = (
        "import sys; from pathlib import Path; from benchmarks.lifecycle_seed import "
        "serve_seeded_emulator as s; s(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(port), str(customers), str(seed_file)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 1800
        while not seed_file.exists() or not wait_for_port(port, timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the seeded emulator did not start; see {log.name}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", seed_file
    finally:
        stop(process)
        log.close()


# -- the backend's database, seeded with the same customers ---------------------------------------


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _filler(n: int, template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Customer number `n` that only the database knows: an account and an active entitlement."""
    account_id, entitlement_id = str(uuid.UUID(int=2 * n + 1)), str(uuid.UUID(int=2 * n + 2))
    entitlement = {
        **template,
        "name": f"providers/{PROVIDER}/entitlements/{entitlement_id}",
        "account": f"providers/{PROVIDER}/accounts/{account_id}",
        "plan": ("basic", "pro")[n % 2],
        "usageReportingId": f"project_number:{900_000_000_000 + n}",
        "orderId": entitlement_id,
    }
    account = {"name": f"providers/{PROVIDER}/accounts/{account_id}", "state": "ACCOUNT_ACTIVE"}
    return account, entitlement


def seed_database(database_url: str, seed_file: Path, customers: int) -> None:
    """The emulator's accounts and entitlements as the backend records them, plus fillers up to
    `customers` (same shape, ids unknown to the emulator)."""
    import sqlalchemy as sa

    from marketplace_saas.adapters.db import migrate
    from marketplace_saas.adapters.db.engine import create_engine
    from marketplace_saas.adapters.db.models import Account, Entitlement, PlanHistory

    migrate.upgrade(database_url)
    seed = json.loads(seed_file.read_text())
    template = seed["entitlements"][0]
    for n in range(customers - len(seed["entitlements"])):
        account, entitlement = _filler(n, template)
        seed["accounts"].append({**seed["accounts"][0], **account})
        seed["entitlements"].append(entitlement)
    now = datetime.now(UTC)
    accounts = []
    for account in seed["accounts"]:
        approvals = {a["name"]: a for a in account.get("approvals", [])}
        accounts.append(
            {
                "id": account["name"].rsplit("/", 1)[1],
                "provider_id": PROVIDER,
                "state": account.get("state"),
                "signup_approval": approvals.get("signup", {}).get("state"),
                "approvals": approvals,
                "signed_up_at": now,
                "google_create_time": _time(account.get("createTime")),
                "google_update_time": _time(account.get("updateTime")),
            }
        )
    entitlements, history = [], []
    for entitlement in seed["entitlements"]:
        eid = entitlement["name"].rsplit("/", 1)[1]
        entitlements.append(
            {
                "id": eid,
                "provider_id": PROVIDER,
                "account_id": entitlement["account"].rsplit("/", 1)[1],
                "product": entitlement.get("product"),
                "plan": entitlement.get("plan"),
                "state": entitlement["state"],
                "offer": entitlement.get("offer"),
                "offer_end_time": _time(entitlement.get("offerEndTime")),
                "usage_reporting_id": entitlement.get("usageReportingId"),
                "order_id": entitlement.get("orderId"),
                "service_enabled": True,
                "service_plan": entitlement.get("plan"),
                "active_since": _time(entitlement.get("createTime")),
                "google_create_time": _time(entitlement.get("createTime")),
                "google_update_time": _time(entitlement.get("updateTime")),
                "raw": entitlement,
            }
        )
        history.append(
            {
                "entitlement_id": eid,
                "plan": entitlement.get("plan"),
                "previous_plan": None,
                "effective_at": _time(entitlement.get("createTime")) or now,
            }
        )
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for table, rows in (
            (Account.__table__, accounts),
            (Entitlement.__table__, entitlements),
            (PlanHistory.__table__, history),
        ):
            for start in range(0, len(rows), 5000):
                conn.execute(sa.insert(table), rows[start : start + 5000])
    engine.dispose()
