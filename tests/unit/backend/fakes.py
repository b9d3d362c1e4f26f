"""In-memory fakes of what the use cases are given: a unit of work, a Procurement API, an app.

    app = FakeApp()                                   # settings, a fixed clock, both fakes
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVATION_REQUESTED)
    handle_message(app, notification_bytes)           # any use case, no database
    app.store.entitlements["e-1"]["service_enabled"]  # what it recorded

`FakeUnitOfWork` keeps every repository in `FakeStore` dicts; a unit of work that raises is
rolled back (the store is restored to its copy taken when the unit of work began), and one opened
with `reading()` is always rolled back. Locks are counted, not taken (one thread).
Other capabilities add their repositories to `FakeStore` and `FakeUnitOfWork` below the marks.
The fake Procurement API is `fake_procurement.FakeProcurement`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

from marketplace_saas.config import Settings
from marketplace_saas.domain.hooks import AccountInfo, CustomerInfo
from marketplace_saas.domain.records import KnownEntitlement
from tests.unit.backend.fake_procurement import PROVIDER, FakeProcurement
from tests.unit.backend.metering_fakes import FakeUsage

T = TypeVar("T")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

ENTITLEMENT_COLUMNS = (
    "id",
    "provider_id",
    "account_id",
    "product",
    "plan",
    "new_pending_plan",
    "state",
    "offer",
    "offer_end_time",
    "new_offer_start_time",
    "new_offer_end_time",
    "subscription_end_time",
    "usage_reporting_id",
    "cancellation_reason",
    "message_to_user",
    "order_id",
    "service_enabled",
    "service_plan",
    "service_suspended_reason",
    "active_since",
    "cancelled_at",
    "google_create_time",
    "google_update_time",
    "deleted_at",
    "raw",
)


@dataclass
class FakeAccount:
    id: str
    provider_id: str
    customer_id: str | None = None
    state: str | None = None
    signup_approval: str | None = None
    approvals: dict[str, Any] = field(default_factory=dict)
    signed_up_at: datetime | None = None
    google_create_time: datetime | None = None
    google_update_time: datetime | None = None
    deleted_at: datetime | None = None


@dataclass
class FakeCustomer:
    id: str
    name: str | None = None
    email: str | None = None
    company: str | None = None
    user_identity: str | None = None
    signup_data: dict[str, Any] = field(default_factory=dict)
    erased_at: datetime | None = None


@dataclass
class FakeInboxRow:
    event_id: str
    payload: str
    status: str
    attempts: int = 0
    deliveries: int = 1
    processed_at: datetime | None = None
    last_error: str | None = None
    traceback: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeStore:
    inbox: dict[str, FakeInboxRow] = field(default_factory=dict)
    accounts: dict[str, FakeAccount] = field(default_factory=dict)
    customers: dict[str, FakeCustomer] = field(default_factory=dict)
    entitlements: dict[str, dict[str, Any]] = field(default_factory=dict)
    plan_history: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    sync_blocks: list[FakeSyncBlock] = field(default_factory=list)
    # -- other capabilities' tables below ------------------------------------------------------
    usage: FakeUsage = field(default_factory=FakeUsage)  # usage records and the report ledger

    def changes(self, action: str | None = None) -> list[dict[str, Any]]:
        """The audit log's change rows (of one action)."""
        return [
            row
            for row in self.audit
            if row["kind"] == "change" and (action is None or row["action"] == action)
        ]

    def calls(self) -> list[str]:
        """The Google calls recorded in the audit log, by action, in order."""
        return [row["action"] for row in self.audit if row["kind"] == "api_call"]


class _Repository:
    def __init__(self, store: FakeStore) -> None:
        self.store = store


class FakeInbox(_Repository):
    def add(self, values: dict[str, Any]) -> bool:
        if values["event_id"] in self.store.inbox:
            return False
        self.store.inbox[values["event_id"]] = FakeInboxRow(
            event_id=values["event_id"],
            payload=values["payload"],
            status=values["status"],
            attempts=values["attempts"],
            deliveries=values["deliveries"],
            processed_at=values.get("processed_at"),
            last_error=values.get("last_error"),
            values=dict(values),
        )
        return True

    def count_delivery(self, event_id: str) -> tuple[str, int] | None:
        row = self.store.inbox.get(event_id)
        if row is None:
            return None
        row.deliveries += 1
        return row.status, row.deliveries

    def settle(
        self, event_id: str, *, status: str, processed_at: datetime, last_error: str | None
    ) -> None:
        row = self.store.inbox.get(event_id)
        if row is not None:
            row.status, row.processed_at, row.last_error = status, processed_at, last_error
            row.attempts += 1
            row.traceback = None

    def get(self, event_id: str) -> FakeInboxRow | None:
        return self.store.inbox.get(event_id)


class FakeAccounts(_Repository):
    def get(self, account_id: str) -> FakeAccount | None:
        return self.store.accounts.get(account_id)

    def add(self, account_id: str, *, provider_id: str) -> FakeAccount:
        row = FakeAccount(id=account_id, provider_id=provider_id)
        self.store.accounts[account_id] = row
        return row

    def of_customer(self, customer_id: str) -> list[FakeAccount]:
        return [a for a in self.store.accounts.values() if a.customer_id == customer_id]

    def live_ids(self) -> set[str]:
        return {a.id for a in self.store.accounts.values() if a.deleted_at is None}

    def signed_up(self) -> dict[str, bool]:
        return {a.id: a.signed_up_at is not None for a in self.store.accounts.values()}

    def claim_signup(self, account_id: str, *, customer_id: str, at: datetime) -> bool:
        row = self.store.accounts.get(account_id)
        if row is None or row.signed_up_at is not None:
            return False
        row.customer_id, row.signed_up_at = customer_id, at
        return True

    def hook_parties(self, account_id: str) -> tuple[AccountInfo, CustomerInfo | None]:
        row = self.store.accounts.get(account_id)
        if row is None:
            return AccountInfo(id=account_id), None
        info = AccountInfo(row.id, row.state, row.signup_approval)
        if row.customer_id is None:
            return info, None
        customer = self.store.customers.get(row.customer_id)
        if customer is None:
            return info, CustomerInfo(id=row.customer_id)
        return info, CustomerInfo(customer.id, customer.name, customer.email, customer.company)


class FakeCustomers(_Repository):
    def get(self, customer_id: str) -> FakeCustomer | None:
        return self.store.customers.get(customer_id)

    def by_identity(self, user_identity: str) -> FakeCustomer | None:
        found = [c for c in self.store.customers.values() if c.user_identity == user_identity]
        return found[0] if found else None

    def add(self, customer_id: str, *, user_identity: str | None) -> FakeCustomer:
        row = FakeCustomer(id=customer_id, user_identity=user_identity)
        self.store.customers[customer_id] = row
        return row


class FakeEntitlements(_Repository):
    columns = ENTITLEMENT_COLUMNS

    def save(self, values: dict[str, Any], *, new: bool) -> None:
        if new == (values["id"] in self.store.entitlements):
            raise AssertionError(f"save(new={new}) of entitlement {values['id']}")
        self.store.entitlements[values["id"]] = {name: values[name] for name in self.columns}

    def get(self, entitlement_id: str) -> SimpleNamespace | None:
        row = self.store.entitlements.get(entitlement_id)
        return SimpleNamespace(**row) if row is not None else None

    def known(self, entitlement_id: str) -> KnownEntitlement | None:
        row = self.store.entitlements.get(entitlement_id)
        if row is None:
            return None
        account = self.store.accounts.get(row["account_id"])
        if account is None:
            return KnownEntitlement(row["google_update_time"], row["account_id"], None, None)
        return KnownEntitlement(
            row["google_update_time"],
            row["account_id"],
            account.google_update_time,
            account.signed_up_at is not None,
        )

    def of_account(self, account_id: str) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(**row)
            for _id, row in sorted(self.store.entitlements.items())
            if row["account_id"] == account_id
        ]

    def live_ids(self) -> set[str]:
        return {i for i, row in self.store.entitlements.items() if row["deleted_at"] is None}


class FakePlanHistory(_Repository):
    def add(self, **row: Any) -> None:
        self.store.plan_history.append(row)

    def previous_plan(self, entitlement_id: str) -> str | None:
        rows = [r for r in self.store.plan_history if r["entitlement_id"] == entitlement_id]
        rows.sort(key=lambda r: r["effective_at"])
        return rows[-1]["previous_plan"] if rows else None

    def rejection_stands(self, entitlement_id: str) -> bool:
        rejected = [
            row["at"]
            for row in self.store.changes("reject_plan_change")
            if row["entitlement_id"] == entitlement_id
            and row["outcome"] in ("rejected", "already_rejected")
        ]
        if not rejected:
            return False
        return not any(
            r["entitlement_id"] == entitlement_id
            and r["previous_plan"] is not None
            and r["recorded_at"] >= max(rejected)
            for r in self.store.plan_history
        )


class FakeAudit(_Repository):
    def add(self, rows: list[dict[str, Any]]) -> None:
        self.store.audit.extend(dict(row) for row in rows)


class FakeOutbox(_Repository):
    def add(self, values: dict[str, Any]) -> None:
        self.store.outbox.setdefault(values["idempotency_key"], dict(values))


@dataclass
class FakeSyncBlock:
    blocked_at: datetime
    actor: str
    accounts_live: int
    accounts_deleting: int
    entitlements_live: int
    entitlements_deleting: int
    sample: dict[str, Any]
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None


class FakeSyncBlocks(_Repository):
    def open_block(self) -> FakeSyncBlock | None:
        return next((b for b in reversed(self.store.sync_blocks) if b.resolved_at is None), None)

    def record_block(self, *, at: datetime, actor: str, **counts: Any) -> None:
        block = self.open_block()
        if block is None:
            self.store.sync_blocks.append(FakeSyncBlock(blocked_at=at, actor=actor, **counts))
            return
        block.blocked_at, block.actor = at, actor
        for name, value in counts.items():
            setattr(block, name, value)

    def resolve_blocks(self, *, at: datetime, by: str, resolution: str) -> int:
        open_blocks = [b for b in self.store.sync_blocks if b.resolved_at is None]
        for block in open_blocks:
            block.resolved_at, block.resolved_by, block.resolution = at, by, resolution
        return len(open_blocks)


class FakeUnitOfWork:
    def __init__(self, store: FakeStore) -> None:
        self.inbox = FakeInbox(store)
        self.accounts = FakeAccounts(store)
        self.customers = FakeCustomers(store)
        self.entitlements = FakeEntitlements(store)
        self.plans = FakePlanHistory(store)
        self.audit = FakeAudit(store)
        self.outbox = FakeOutbox(store)
        self.sync_blocks = FakeSyncBlocks(store)
        # -- other capabilities' repositories below ---------------------------------------------
        self.usage = store.usage
        self.store = store
        self.locks: list[str] = []

    def lock_entitlement(self, entitlement_id: str) -> dict[str, Any] | None:
        self.locks.append(f"entitlement:{entitlement_id}")
        row = self.store.entitlements.get(entitlement_id)
        return dict(row) if row is not None else None

    def lock_account(self, account_id: str) -> FakeAccount | None:
        self.locks.append(f"account:{account_id}")
        return self.store.accounts.get(account_id)

    def lock_inbox(self, event_id: str) -> FakeInboxRow | None:
        self.locks.append(f"inbox:{event_id}")
        return self.store.inbox.get(event_id)


class FakeWrites:
    """`container.writes` without the grouping: one unit of work per call."""

    def __init__(self, app: FakeApp) -> None:
        self.app = app

    def run(self, fn: Callable[[FakeUnitOfWork], T]) -> T:
        with self.app.unit_of_work() as uow:
            return fn(uow)


class FakeApp:
    """What a use case is given (`service.unit_of_work.App`), all in memory."""

    def __init__(self, **settings: Any) -> None:
        self.settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            marketplace_provider_id=PROVIDER,
            marketplace_sandbox=True,
            database_url="sqlite://",
            **settings,
        )
        self.clock = T0
        self.store = FakeStore()
        self.procurement = FakeProcurement(self.now)
        self.writes = FakeWrites(self)
        self.units: list[FakeUnitOfWork] = []

    def now(self) -> datetime:
        return self.clock

    def tick(self, seconds: float = 1.0) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    @contextmanager
    def unit_of_work(self) -> Iterator[FakeUnitOfWork]:
        saved = copy.deepcopy(self.store)
        uow = FakeUnitOfWork(self.store)
        self.units.append(uow)
        try:
            yield uow
        except BaseException:
            self._restore(saved)
            raise

    @contextmanager
    def reading(self) -> Iterator[FakeUnitOfWork]:
        saved = copy.deepcopy(self.store)
        try:
            yield FakeUnitOfWork(self.store)
        finally:
            self._restore(saved)

    def _restore(self, saved: FakeStore) -> None:
        for name in FakeStore.__dataclass_fields__:
            setattr(self.store, name, getattr(saved, name))
