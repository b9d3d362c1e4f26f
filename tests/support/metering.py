"""Helpers for the metering tests: seed entitlements straight into the database, a fixed clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from marketplace_saas.adapters.db.models import Entitlement, PlanHistory
from marketplace_saas.adapters.db.usage_store import chunks
from marketplace_saas.bootstrap import Container, bootstrap

T0 = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)


@dataclass
class FixedClock:
    """A clock tests move by hand; `container.now` is this object's `now`."""

    current: datetime = T0

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@dataclass
class SeededEntitlement:
    id: str
    plan: str
    active_since: datetime
    usage_reporting_id: str | None
    product: str = "example-product"
    cancelled_at: datetime | None = None
    changes: Sequence[tuple[datetime, str]] = field(default_factory=list)  # (effective_at, plan)


def seed_entitlements(session: Any, entitlements: Sequence[SeededEntitlement]) -> None:
    """Insert entitlement rows (as the lifecycle would keep them) and their plan history."""
    for part in chunks(list(entitlements), 2000):
        session.add_all(
            [
                Entitlement(
                    id=e.id,
                    provider_id="DEMO-sandbox",
                    account_id=f"acct-{e.id}",
                    product=e.product,
                    plan=e.changes[-1][1] if e.changes else e.plan,
                    state="ENTITLEMENT_CANCELLED" if e.cancelled_at else "ENTITLEMENT_ACTIVE",
                    usage_reporting_id=e.usage_reporting_id,
                    service_enabled=e.cancelled_at is None,
                    service_plan=e.changes[-1][1] if e.changes else e.plan,
                    active_since=e.active_since,
                    cancelled_at=e.cancelled_at,
                    raw={},
                )
                for e in part
            ]
        )
        session.flush()
        history = []
        for e in part:
            previous = e.plan
            for effective_at, plan in e.changes:
                history.append(
                    PlanHistory(
                        entitlement_id=e.id,
                        plan=plan,
                        previous_plan=previous,
                        effective_at=effective_at,
                    )
                )
                previous = plan
        session.add_all(history)
        session.flush()


def metering_container(
    database_url: str, *, clock: FixedClock | None = None, servicecontrol: Any = None, **env: Any
) -> Container:
    """`bootstrap()` with sandbox settings plus `env` overrides, on `database_url`."""
    from marketplace_saas.config import Settings

    values: dict[str, Any] = {
        "MARKETPLACE_SANDBOX": True,
        "DATABASE_URL": database_url,
        "USAGE_API_TOKENS": "test-token",
        **env,
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    return bootstrap(settings, servicecontrol=servicecontrol, clock=(clock or FixedClock()).now)


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a background thread; yield its base URL."""
    import uvicorn

    from tests.support.infra import free_port

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"app-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the app did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def emulator_entitlement(
    emulator: Any, plan: str, provider: str = "DEMO-sandbox"
) -> SeededEntitlement:
    """Purchase and approve `plan` in the emulator; the matching row to seed in our database."""
    procurement = emulator.procurement
    account, entitlement = procurement.purchase(provider, "example-product", plan)
    procurement.approve_account(provider, account.id, "signup")
    procurement.approve_entitlement(provider, entitlement.id)
    (view,) = procurement.find_by_usage_reporting_id(entitlement.usage_reporting_id)
    return SeededEntitlement(
        entitlement.id, plan, view.periods[0].start, entitlement.usage_reporting_id
    )


def to_half_past(emulator: Any) -> None:
    """Move the emulator's clock on to the next half hour (hh:30:00), at most an hour ahead.

    A test that buys at the emulator's "now", advances N hours and expects N windows closed
    depends on where in the hour it started: started in an hour's first minute (within
    `USAGE_GRACE_SECONDS`), its last window is not yet due. Starting at half past takes the wall
    clock out of it.
    """
    now = emulator.clock.now()
    past = (now - now.replace(minute=0, second=0, microsecond=0)).total_seconds()
    emulator.advance_clock((1800 - past) % 3600)
