"""The database's unit of work: one `Session` transaction and its repositories.

    with transaction(sessions) as uow: ...     # commits at the end (`Container.unit_of_work`)
    with transaction(sessions, wait_for_locks=False, defer_writes=True) as uow: ...
                                               # a group commit's shared transaction
    with reading(sessions) as uow: ...         # read only (`Container.reading`)
    SqlUnitOfWork(session)                     # a caller's open session (not-yet-ported code)

The repositories wrap the statements of `repositories` (built once, with bind parameters: the
listener's hot path); on PostgreSQL the hot ones run through `pg_direct` instead (the same SQL on
the session's psycopg cursor, without `Session.execute`'s cost per statement). The locks are
taken here only (`lock_entitlement`, `lock_account`, `lock_inbox`): `SELECT ... FOR UPDATE` on
PostgreSQL, after a transaction advisory lock on the entitlement's or account's id
(`replica_locks.xact_lock`: it also covers a row that does not exist yet, which two replicas may
both be about to insert); on SQLite the transaction takes the database's write lock before its
first read. A unit of work made with `wait_for_locks=False`
(the shared transaction of a group commit, `group_commit`) raises `LockBusy` instead of waiting
for another transaction's advisory lock. The protocols these satisfy are in
`service.ports` and `service.unit_of_work`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from marketplace_saas.adapters.db import pg_direct
from marketplace_saas.adapters.db import repositories as repo
from marketplace_saas.adapters.db.hook_outbox import SqlHooks
from marketplace_saas.adapters.db.models import (
    Account,
    AuditLog,
    Customer,
    Entitlement,
    HookOutbox,
    InboxMessage,
    PlanHistory,
)
from marketplace_saas.adapters.db.replica_locks import xact_lock
from marketplace_saas.adapters.db.sign_in_store import SqlSignIn
from marketplace_saas.adapters.db.sync_blocks import SqlSyncBlocks
from marketplace_saas.adapters.db.usage_ledger import SqlUsage
from marketplace_saas.domain.hooks import AccountInfo, CustomerInfo
from marketplace_saas.domain.records import KnownEntitlement

_AUDIT_INSERT = sa.insert(cast(sa.Table, AuditLog.__table__))  # Core: no unit of work per row
_OUTBOX_INSERT = repo.insert_skipping_duplicates(
    cast(sa.Table, HookOutbox.__table__), "idempotency_key"
)
_ACCOUNTS = cast(sa.Table, Account.__table__)
_CUSTOMERS = cast(sa.Table, Customer.__table__)
# One read for both, built once (hooks are enqueued on the listener's hot path).
_ACCOUNT_AND_CUSTOMER = (
    sa.select(
        _ACCOUNTS.c.id,
        _ACCOUNTS.c.state,
        _ACCOUNTS.c.signup_approval,
        _ACCOUNTS.c.customer_id,
        _CUSTOMERS.c.id.label("customer_found"),
        _CUSTOMERS.c.name,
        _CUSTOMERS.c.email,
        _CUSTOMERS.c.company,
    )
    .outerjoin(_CUSTOMERS, _CUSTOMERS.c.id == _ACCOUNTS.c.customer_id)
    .where(_ACCOUNTS.c.id == sa.bindparam("account_id"))
)
_PREVIOUS_PLAN = (
    sa.select(PlanHistory.previous_plan)
    .where(PlanHistory.entitlement_id == sa.bindparam("entitlement_id"))
    .order_by(PlanHistory.effective_at.desc(), PlanHistory.id.desc())
    .limit(1)
)


class Deferred:
    """Writes nothing in the transaction reads back (audit rows, hook outbox rows, inbox
    settlements), held until the unit of work ends and then sent as one statement each, an
    executemany of every row (`flush`): a group commit's batch sends one per kind, not one per
    notification. Sent in the order each kind was first added; an error surfaces at `flush`, in
    the same transaction."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[Any, list[dict[str, Any]]] = {}

    def add(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        self.rows.setdefault(statement, []).extend(rows)

    def flush(self, session: Session, direct: pg_direct.Direct | None = None) -> None:
        for statement, rows in self.rows.items():
            if isinstance(statement, pg_direct.Many):
                assert direct is not None  # only the PostgreSQL repositories add these
                direct.many(statement, rows)
            else:
                session.execute(statement, rows[0] if len(rows) == 1 else rows)
        self.rows.clear()


class _Deferring:
    """A repository whose rows may wait for the end of the unit of work (`Deferred`), and which
    runs its statements through `pg_direct` on PostgreSQL (`direct`)."""

    __slots__ = ("deferred", "direct", "session")

    def __init__(
        self,
        session: Session,
        deferred: Deferred | None = None,
        direct: pg_direct.Direct | None = None,
    ) -> None:
        self.session = session
        self.deferred = deferred
        self.direct = direct


class SqlInbox(_Deferring):
    __slots__ = ()

    def add(self, values: dict[str, Any]) -> bool:
        if self.direct is not None:
            return pg_direct.insert_inbox(self.direct, values)
        return repo.insert_inbox(self.session, values)

    def count_delivery(self, event_id: str) -> tuple[str, int] | None:
        return repo.count_delivery(self.session, event_id)

    def settle(
        self, event_id: str, *, status: str, processed_at: datetime, last_error: str | None
    ) -> None:
        values = repo.settle_values(event_id, status, processed_at, last_error)
        if self.deferred is not None:
            statement = pg_direct.INBOX_SETTLE if self.direct is not None else repo.INBOX_SETTLE
            self.deferred.add(statement, [values])
        else:
            self.session.execute(repo.INBOX_SETTLE, values)

    def get(self, event_id: str) -> InboxMessage | None:
        return repo.inbox_by_event_id(self.session, event_id)

    def unsettled(self, *, received_before: datetime, limit: int) -> list[str]:
        return repo.unsettled_inbox(self.session, received_before=received_before, limit=limit)

    def latest(self, *, status: str | None = None, limit: int = 100) -> list[InboxMessage]:
        return repo.list_inbox(self.session, status=status, limit=limit)


class SqlAccounts:
    __slots__ = ("direct", "session")

    def __init__(self, session: Session, direct: pg_direct.Direct | None = None) -> None:
        self.session = session
        self.direct = direct

    def get(self, account_id: str) -> Account | None:
        return repo.account_by_id(self.session, account_id)

    def add(self, account_id: str, *, provider_id: str) -> Account:
        row = Account(id=account_id, provider_id=provider_id, approvals={})
        self.session.add(row)
        return row

    def of_customer(self, customer_id: str) -> list[Account]:
        return repo.accounts_of_customer(self.session, customer_id)

    def live_ids(self) -> set[str]:
        return repo.live_account_ids(self.session)

    def signed_up(self) -> dict[str, bool]:
        return repo.signed_up_by_account(self.session)

    def claim_signup(self, account_id: str, *, customer_id: str, at: datetime) -> bool:
        self.session.flush()  # the customer row first: the account refers to it
        claim = self.session.execute(
            sa.update(Account)
            .where(Account.id == account_id, Account.signed_up_at.is_(None))
            .values(customer_id=customer_id, signed_up_at=at, updated_at=at)
            .execution_options(synchronize_session=False)
        )
        return getattr(claim, "rowcount", 0) == 1

    def hook_parties(self, account_id: str) -> tuple[AccountInfo, CustomerInfo | None]:
        if self.direct is not None:
            return pg_direct.hook_parties(self.direct, account_id)
        row = self.session.execute(_ACCOUNT_AND_CUSTOMER, {"account_id": account_id}).first()
        return repo.parties_from_row(account_id, None if row is None else tuple(row))


class SqlCustomers:
    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, customer_id: str) -> Customer | None:
        return repo.customer_by_id(self.session, customer_id)

    def by_identity(self, user_identity: str) -> Customer | None:
        statement = sa.select(Customer).where(Customer.user_identity == user_identity)
        return self.session.scalars(statement).first()

    def add(self, customer_id: str, *, user_identity: str | None) -> Customer:
        row = Customer(id=customer_id, user_identity=user_identity)
        self.session.add(row)
        return row


class SqlEntitlements:
    __slots__ = ("direct", "session")
    columns = repo.ENTITLEMENT_COLUMNS

    def __init__(self, session: Session, direct: pg_direct.Direct | None = None) -> None:
        self.session = session
        self.direct = direct

    def save(self, values: dict[str, Any], *, new: bool) -> None:
        if self.direct is not None:
            pg_direct.save_entitlement(self.direct, values, new=new)
        else:
            repo.save_entitlement(self.session, values, new=new)

    def get(self, entitlement_id: str) -> Entitlement | None:
        return self.session.get(Entitlement, entitlement_id)

    def known(self, entitlement_id: str) -> KnownEntitlement | None:
        if self.direct is not None:
            return pg_direct.known_entitlement(self.direct, entitlement_id)
        return repo.known_entitlement(self.session, entitlement_id)

    def of_account(self, account_id: str) -> list[Entitlement]:
        return repo.entitlements_of_account(self.session, account_id)

    def live_ids(self) -> set[str]:
        return repo.live_entitlement_ids(self.session)


class SqlPlanHistory:
    __slots__ = ("direct", "session")

    def __init__(self, session: Session, direct: pg_direct.Direct | None = None) -> None:
        self.session = session
        self.direct = direct

    def add(
        self,
        *,
        entitlement_id: str,
        plan: str,
        previous_plan: str | None,
        effective_at: datetime,
        event_id: str | None,
        recorded_at: datetime,
    ) -> None:
        values: dict[str, Any] = {
            "entitlement_id": entitlement_id,
            "plan": plan,
            "previous_plan": previous_plan,
            "effective_at": effective_at,
            "event_id": event_id,
            "recorded_at": recorded_at,
        }
        if self.direct is not None:
            pg_direct.add_plan_history(self.direct, values)
        else:
            repo.add_plan_history(self.session, values)

    def previous_plan(self, entitlement_id: str) -> str | None:
        if self.direct is not None:
            return pg_direct.previous_plan(self.direct, entitlement_id)
        found: str | None = self.session.scalars(
            _PREVIOUS_PLAN, {"entitlement_id": entitlement_id}
        ).first()
        return found

    def rejection_stands(self, entitlement_id: str) -> bool:
        return repo.plan_change_rejected_last(self.session, entitlement_id)


class SqlAudit(_Deferring):
    __slots__ = ()

    def add(self, rows: list[dict[str, Any]]) -> None:
        if self.deferred is not None:
            statement = pg_direct.AUDIT_INSERT if self.direct is not None else _AUDIT_INSERT
            self.deferred.add(statement, rows)
            return
        # One row is a plain execution (the hot path's change row), several an executemany.
        self.session.execute(_AUDIT_INSERT, rows[0] if len(rows) == 1 else rows)


class SqlOutbox(_Deferring):
    __slots__ = ()

    def add(self, values: dict[str, Any]) -> None:
        if self.deferred is not None and self.direct is not None:
            self.deferred.add(pg_direct.OUTBOX_INSERT, [values])
            return
        statement = _OUTBOX_INSERT[repo.dialect_of(self.session)]
        if self.deferred is not None:
            self.deferred.add(statement, [values])
        else:
            self.session.execute(statement, values)


class SqlUnitOfWork:
    """The repositories of one session's transaction (see the module docstring)."""

    def __init__(
        self, session: Session, *, wait_for_locks: bool = True, deferred: Deferred | None = None
    ) -> None:
        self.session = session
        self.wait_for_locks = wait_for_locks
        self.deferred = deferred  # flushed by `transaction` before it commits
        # PostgreSQL: the listener's hot statements go straight to psycopg (`pg_direct`).
        direct = pg_direct.Direct(session) if repo.dialect_of(session) == "postgresql" else None
        self.direct = direct
        # -- the procurement side's repositories ------------------------------------------------
        self.inbox = SqlInbox(session, deferred, direct)
        self.accounts = SqlAccounts(session, direct)
        self.customers = SqlCustomers(session)
        self.entitlements = SqlEntitlements(session, direct)
        self.plans = SqlPlanHistory(session, direct)
        self.audit = SqlAudit(session, deferred, direct)
        self.outbox = SqlOutbox(session, deferred, direct)
        self.sync_blocks = SqlSyncBlocks(session)
        # -- metering and provisioning hooks -----------------------------------------------------
        self.usage = SqlUsage(session)
        self.hooks = SqlHooks(session)
        self.sign_in = SqlSignIn(session)

    # -- locks ----------------------------------------------------------------------------------

    def lock_entitlement(self, entitlement_id: str) -> dict[str, Any] | None:
        # The advisory lock first: it also holds off a writer of a row not inserted yet.
        if self.direct is not None:
            pg_direct.xact_lock(
                self.direct, "entitlement", entitlement_id, wait=self.wait_for_locks
            )
            return pg_direct.entitlement_for_update(self.direct, entitlement_id)
        xact_lock(self.session, "entitlement", entitlement_id, wait=self.wait_for_locks)
        return repo.entitlement_values(self.session, entitlement_id, locked=True)

    def lock_account(self, account_id: str) -> Account | None:
        xact_lock(self.session, "account", account_id, wait=self.wait_for_locks)
        return repo.account_by_id(self.session, account_id, locked=True)

    def lock_inbox(self, event_id: str) -> InboxMessage | None:
        return repo.inbox_by_event_id(self.session, event_id, locked=True)


@contextmanager
def transaction(
    sessions: sessionmaker[Session], *, wait_for_locks: bool = True, defer_writes: bool = False
) -> Iterator[SqlUnitOfWork]:
    """A unit of work in its own transaction: committed at the end, rolled back on an error.
    `defer_writes`: its audit, outbox and inbox-settlement rows are sent together at the end
    (`Deferred`; the group commit's transactions)."""
    with sessions.begin() as session:
        deferred = Deferred() if defer_writes else None
        uow = SqlUnitOfWork(session, wait_for_locks=wait_for_locks, deferred=deferred)
        yield uow
        if deferred is not None:
            deferred.flush(session, uow.direct)


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[SqlUnitOfWork]:
    """A unit of work that only reads: its transaction is rolled back at the end."""
    with sessions() as session:
        yield SqlUnitOfWork(session)
