"""The unit of work: one transaction, its repositories, and the locks it holds.

    with app.unit_of_work() as uow:        # commits when the block ends, rolls back on error
        row = uow.lock_entitlement(eid)    # the per-entitlement lock, held until it ends
        uow.entitlements.save(row, new=False)
    with app.reading() as uow:             # reads only: nothing is committed
        known = uow.entitlements.known(eid)
    app.writes.run(lambda uow: ...)        # the listener's writes: on SQLite, those of
                                           # concurrent workers share one commit

Locks live here and only here (`lock_entitlement`, `lock_account`, `lock_inbox`): the database's
unit of work (`adapters.db.unit_of_work`) takes `SELECT ... FOR UPDATE` on PostgreSQL, and on
SQLite the database's write lock before the first read. No Google call is made while a unit of
work is open.

`App` is what a use case is given: the settings, the Procurement gateway, the clock and units of
work. `bootstrap.Container` is the production one; the unit tests pass fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from marketplace_saas.service.ports import (
    AccountRecord,
    AccountRepository,
    AuditRepository,
    CustomerRepository,
    EntitlementRepository,
    EntitlementValues,
    InboxRecord,
    InboxRepository,
    OutboxRepository,
    PlanHistoryRepository,
    SyncBlockRepository,
)

if TYPE_CHECKING:  # the capabilities' packages import this module: names for typing only
    from marketplace_saas.adapters.procurement import ProcurementApi
    from marketplace_saas.config import Settings
    from marketplace_saas.service.hooks.ports import HookRepository
    from marketplace_saas.service.metering.ports import UsageRepository
    from marketplace_saas.service.sign_in import SignInRepository

T = TypeVar("T")


class UnitOfWork(Protocol):
    # -- the procurement side's repositories (lifecycle, decisions, sign-up) --------------------
    @property
    def inbox(self) -> InboxRepository: ...
    @property
    def accounts(self) -> AccountRepository: ...
    @property
    def customers(self) -> CustomerRepository: ...
    @property
    def entitlements(self) -> EntitlementRepository: ...
    @property
    def plans(self) -> PlanHistoryRepository: ...
    @property
    def audit(self) -> AuditRepository: ...
    @property
    def outbox(self) -> OutboxRepository: ...
    @property
    def sync_blocks(self) -> SyncBlockRepository:
        """Syncs the mass-deletion guard stopped (`service/procurement/sync_guard.py`)."""

    # -- metering and provisioning hooks ---------------------------------------------------------
    @property
    def usage(self) -> UsageRepository:
        """Usage records and the report ledger (`service/metering/`)."""

    @property
    def hooks(self) -> HookRepository:
        """The hook outbox as the dispatcher and operators use it (`service/hooks/`)."""

    @property
    def sign_in(self) -> SignInRepository:
        """Console sign-in failure counters and operator sessions (`service/sign_in.py`)."""

    # -- locks: held until the unit of work ends ------------------------------------------------
    def lock_entitlement(self, entitlement_id: str) -> EntitlementValues | None:
        """Lock the entitlement against concurrent writers; its columns (None: no such row)."""

    def lock_account(self, account_id: str) -> AccountRecord | None:
        """Lock the account against concurrent writers; the row (None: no such row)."""

    def lock_inbox(self, event_id: str) -> InboxRecord | None:
        """Lock a stored notification against concurrent writers; the row."""


class Writes(Protocol):
    def run(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run `fn(uow)` in a write transaction; its result once committed, or its error."""


class App(Protocol):
    """What a use case is given (`bootstrap.Container` in production)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def procurement(self) -> ProcurementApi: ...
    @property
    def writes(self) -> Writes: ...

    def now(self) -> datetime:
        """The current time, aware UTC."""

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        """A write transaction: committed when the block ends, rolled back on an error."""

    def reading(self) -> AbstractContextManager[UnitOfWork]:
        """A read-only transaction: nothing is committed."""
