"""Reading and writing our records: small functions over a caller's `Session`.

The caller owns the transaction (`with container.sessions.begin() as session:`). Rows that several
workers may update at once are read with `locked=True`: `SELECT ... FOR UPDATE` on PostgreSQL; on
SQLite the transaction first takes the database's write lock, which serialises writers the same
way (SQLite has one writer at a time anyway).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import (
    Account,
    AuditLog,
    Customer,
    Entitlement,
    InboxMessage,
    PlanHistory,
)
from marketplace_saas.domain.hooks import AccountInfo, CustomerInfo
from marketplace_saas.domain.records import KnownEntitlement

M = TypeVar("M")

_WRITE_LOCKED = "marketplace_saas.write_locked"  # session.info: the transaction holding it

# The listener's hot path runs the statements below once per notification. They are built once,
# here, with bind parameters: building an ORM statement (`update(Model).where(...).values(...)`)
# costs several times what executing a cached one does.
_TAKE_WRITE_LOCK = sa.text("UPDATE inbox SET id = id WHERE id = -1")
_KEY: sa.BindParameter[str] = sa.bindparam("key", type_=sa.String())


def _by_key(model: Any, column: Any) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """SELECT of `model` by `column` = :key, and the same `FOR UPDATE` (PostgreSQL's lock)."""
    statement = sa.select(model).where(column == _KEY)
    return statement, statement.with_for_update()


_SELECT_BY_KEY: dict[type[Any], tuple[sa.Select[Any], sa.Select[Any]]] = {
    InboxMessage: _by_key(InboxMessage, InboxMessage.event_id),
    Account: _by_key(Account, Account.id),
    Entitlement: _by_key(Entitlement, Entitlement.id),
}


def insert_skipping_duplicates(table: sa.Table, key: str) -> dict[str, Any]:
    """Per dialect, `INSERT ... ON CONFLICT (key) DO NOTHING` into `table`, values bound at
    execution (pick one with `dialect_of(session)`)."""
    return {
        name: dialect.insert(table).on_conflict_do_nothing(index_elements=[key])
        for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
    }


_INBOX = cast(sa.Table, InboxMessage.__table__)
_INBOX_INSERT = {
    name: statement.returning(_INBOX.c.id)
    for name, statement in insert_skipping_duplicates(_INBOX, "event_id").items()
}
_INBOX_COUNT_DELIVERY = (
    sa.update(_INBOX)
    .where(_INBOX.c.event_id == _KEY)
    .values(deliveries=_INBOX.c.deliveries + 1)
    .returning(_INBOX.c.status, _INBOX.c.deliveries)
)
_INBOX_SETTLE = (
    sa.update(_INBOX)
    .where(_INBOX.c.event_id == _KEY)
    .values(
        status=sa.bindparam("status"),
        attempts=_INBOX.c.attempts + 1,
        processed_at=sa.bindparam("processed_at"),
        last_error=sa.bindparam("last_error"),
        traceback=None,
    )
)


def dialect_of(session: Session) -> str:
    """`sqlite` or `postgresql`: the only two the project supports."""
    name = session.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):  # pragma: no cover - guarded at start-up too
        raise RuntimeError(f"unsupported database dialect {name!r}")
    return name


def take_write_lock(session: Session) -> None:
    """On SQLite, start the transaction as a writer now, so no read in it can go stale.

    Once per transaction: a transaction that already holds the lock keeps it until it ends.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_WRITE_LOCKED) is transaction:
        return
    session.execute(_TAKE_WRITE_LOCK)
    session.info[_WRITE_LOCKED] = transaction


def _reading(
    session: Session, plain: sa.Select[Any], for_update: sa.Select[Any], *, locked: bool
) -> sa.Select[Any]:
    """The statement for a read: `plain`, or for a row the caller will write (`locked`), the
    write lock taken (SQLite) or `for_update` (PostgreSQL's row lock)."""
    if not locked:
        return plain
    take_write_lock(session)
    return for_update if session.get_bind().dialect.name == "postgresql" else plain


def _one(session: Session, model: type[M], key: str, *, locked: bool) -> M | None:
    statement = _reading(session, *_SELECT_BY_KEY[model], locked=locked)
    found: M | None = session.execute(statement, {"key": key}).scalars().first()
    return found


# -- inbox ------------------------------------------------------------------------------------


def inbox_by_event_id(
    session: Session, event_id: str, *, locked: bool = False
) -> InboxMessage | None:
    return _one(session, InboxMessage, event_id, locked=locked)


def insert_inbox(session: Session, values: dict[str, Any]) -> bool:
    """Insert an inbox row unless its eventId is there already; whether it was inserted."""
    inserted = session.execute(_INBOX_INSERT[dialect_of(session)], values).first()
    return inserted is not None


def count_delivery(session: Session, event_id: str) -> tuple[str, int] | None:
    """One more delivery of a stored eventId: its status and deliveries (None: no such row)."""
    row = session.execute(_INBOX_COUNT_DELIVERY, {"key": event_id}).first()
    return (row[0], row[1]) if row is not None else None


def settle_inbox(
    session: Session,
    event_id: str,
    *,
    status: str,
    processed_at: datetime,
    last_error: str | None,
) -> None:
    """Count one attempt and record its outcome: one UPDATE (it takes the row's lock itself)."""
    session.execute(INBOX_SETTLE, settle_values(event_id, status, processed_at, last_error))


INBOX_SETTLE = _INBOX_SETTLE


def settle_values(
    event_id: str, status: str, processed_at: datetime, last_error: str | None
) -> dict[str, Any]:
    """The parameters of `INBOX_SETTLE` (`settle_inbox`, or several at once as an executemany)."""
    return {
        "key": event_id,
        "status": status,
        "processed_at": processed_at,
        "last_error": last_error,
    }


def list_inbox(
    session: Session, *, status: str | None = None, limit: int = 100
) -> list[InboxMessage]:
    statement = sa.select(InboxMessage).order_by(InboxMessage.id.desc()).limit(limit)
    if status:
        statement = statement.where(InboxMessage.status == status)
    return list(session.scalars(statement))


def unsettled_inbox(session: Session, *, received_before: datetime, limit: int) -> list[str]:
    """The eventIds stored before `received_before` and never settled (`received` or
    `retrying`), oldest first (the index on status and received_at)."""
    statement = (
        sa.select(InboxMessage.event_id)
        .where(
            InboxMessage.status.in_(("received", "retrying")),
            InboxMessage.received_at < received_before,
        )
        .order_by(InboxMessage.received_at)
        .limit(limit)
    )
    return list(session.scalars(statement))


# -- accounts and customers -------------------------------------------------------------------


def account_by_id(session: Session, account_id: str, *, locked: bool = False) -> Account | None:
    return _one(session, Account, account_id, locked=locked)


def customer_by_id(session: Session, customer_id: str) -> Customer | None:
    return session.get(Customer, customer_id)


def accounts_of_customer(session: Session, customer_id: str) -> list[Account]:
    return list(session.scalars(sa.select(Account).where(Account.customer_id == customer_id)))


def live_account_ids(session: Session) -> set[str]:
    """Accounts we have not marked deleted."""
    return set(session.scalars(sa.select(Account.id).where(Account.deleted_at.is_(None))))


def signed_up_by_account(session: Session) -> dict[str, bool]:
    """Account id -> whether the customer completed our sign-up page."""
    rows = session.execute(sa.select(Account.id, Account.signed_up_at)).all()
    return {account_id: signed_up_at is not None for account_id, signed_up_at in rows}


# -- entitlements -----------------------------------------------------------------------------


def entitlement_by_id(
    session: Session, entitlement_id: str, *, locked: bool = False
) -> Entitlement | None:
    return _one(session, Entitlement, entitlement_id, locked=locked)


_ENTITLEMENTS = cast(sa.Table, Entitlement.__table__)
# Every column the lifecycle writes (`created_at` and `updated_at` are the table's defaults).
ENTITLEMENT_COLUMNS = tuple(
    column.name for column in _ENTITLEMENTS.c if column.name not in ("created_at", "updated_at")
)
_ENTITLEMENT_SET = tuple(name for name in ENTITLEMENT_COLUMNS if name != "id")
_ENTITLEMENT_SELECT = sa.select(*(_ENTITLEMENTS.c[name] for name in ENTITLEMENT_COLUMNS)).where(
    _ENTITLEMENTS.c.id == _KEY
)
_ENTITLEMENT_SELECT_FOR_UPDATE = _ENTITLEMENT_SELECT.with_for_update()
_ENTITLEMENT_INSERT = sa.insert(_ENTITLEMENTS)
_ENTITLEMENT_UPDATE = (
    sa.update(_ENTITLEMENTS)
    .where(_ENTITLEMENTS.c.id == _KEY)
    .values({name: sa.bindparam("set_" + name) for name in _ENTITLEMENT_SET})
)


def entitlement_values(
    session: Session, entitlement_id: str, *, locked: bool = False
) -> dict[str, Any] | None:
    """The entitlement's columns as a dict, for a caller that writes it back with
    `save_entitlement` (no ORM object to load and flush: the listener's hot path)."""
    statement = _reading(
        session, _ENTITLEMENT_SELECT, _ENTITLEMENT_SELECT_FOR_UPDATE, locked=locked
    )
    row = session.execute(statement, {"key": entitlement_id}).mappings().first()
    return dict(row) if row is not None else None


def save_entitlement(session: Session, values: dict[str, Any], *, new: bool) -> None:
    """Write every column of `values` (`ENTITLEMENT_COLUMNS`): an INSERT when `new`, else one
    UPDATE. An ORM copy of the row in this session is expired, so it reloads what was written."""
    if new:
        session.execute(_ENTITLEMENT_INSERT, {name: values[name] for name in ENTITLEMENT_COLUMNS})
    else:
        session.execute(
            _ENTITLEMENT_UPDATE,
            {"key": values["id"], **{"set_" + name: values[name] for name in _ENTITLEMENT_SET}},
        )
    cached = session.identity_map.get(session.identity_key(Entitlement, values["id"]))
    if cached is not None:
        session.expire(cached)


_ACCOUNTS = cast(sa.Table, Account.__table__)
# Core columns, not ORM attributes: an ORM-enabled SELECT goes through the ORM's compile and
# execution layers on every call (about 8% of the listener's Python time on PostgreSQL).
_KNOWN_ENTITLEMENT = (
    sa.select(
        _ENTITLEMENTS.c.google_update_time,
        _ENTITLEMENTS.c.account_id,
        _ACCOUNTS.c.id,
        _ACCOUNTS.c.google_update_time,
        _ACCOUNTS.c.signed_up_at,
    )
    .select_from(_ENTITLEMENTS)
    .outerjoin(_ACCOUNTS, _ACCOUNTS.c.id == _ENTITLEMENTS.c.account_id)
    .where(_ENTITLEMENTS.c.id == _KEY)
)


def known_entitlement(session: Session, entitlement_id: str) -> KnownEntitlement | None:
    """One query: the entitlement's applied updateTime and its account's, and the sign-up."""
    row = session.execute(_KNOWN_ENTITLEMENT, {"key": entitlement_id}).first()
    return None if row is None else known_from_row(tuple(row))


def parties_from_row(
    account_id: str, row: tuple[Any, ...] | None
) -> tuple[AccountInfo, CustomerInfo | None]:
    """The hook's account and customer from one row (account id, state, sign-up approval,
    customer id, the customer's id if we have it, name, email, company), or None."""
    if row is None:
        return AccountInfo(id=account_id), None
    found_id, state, signup_approval, customer_id, customer_found, name, email, company = row
    info = AccountInfo(id=found_id, state=state, signup_approval=signup_approval)
    if customer_id is None:
        return info, None
    if customer_found is None:
        return info, CustomerInfo(id=customer_id)
    return info, CustomerInfo(id=customer_id, name=name, email=email, company=company)


def known_from_row(row: tuple[Any, ...]) -> KnownEntitlement:
    """A `known_entitlement` row (applied updateTime, account id, the account's id if we have
    it, its applied updateTime, its sign-up time) as a `KnownEntitlement`."""
    applied, account_id, account_found, account_applied, signed_up_at = row
    if account_found is None:
        return KnownEntitlement(applied, account_id, None, None)
    return KnownEntitlement(applied, account_id, account_applied, signed_up_at is not None)


def entitlements_of_account(session: Session, account_id: str) -> list[Entitlement]:
    statement = (
        sa.select(Entitlement).where(Entitlement.account_id == account_id).order_by(Entitlement.id)
    )
    return list(session.scalars(statement))


def live_entitlement_ids(session: Session) -> set[str]:
    """Entitlements we have not marked deleted."""
    statement = sa.select(Entitlement.id).where(Entitlement.deleted_at.is_(None))
    return set(session.scalars(statement))


_PLAN_HISTORY_INSERT = sa.insert(cast(sa.Table, PlanHistory.__table__))


def add_plan_history(session: Session, values: dict[str, Any]) -> None:
    """One row (`entitlement_id`, `plan`, `previous_plan`, `effective_at`, `event_id`,
    `recorded_at`), inserted now (Core: no unit of work for a row nobody reads back here)."""
    session.execute(_PLAN_HISTORY_INSERT, values)


def plan_history(session: Session, entitlement_id: str) -> list[PlanHistory]:
    statement = (
        sa.select(PlanHistory)
        .where(PlanHistory.entitlement_id == entitlement_id)
        .order_by(PlanHistory.effective_at, PlanHistory.id)
    )
    return list(session.scalars(statement))


def plan_change_rejected_last(session: Session, entitlement_id: str) -> bool:
    """Whether our latest word on this entitlement's plan is a rejection we recorded: a
    `reject_plan_change` decision, and no plan change recorded since (an approved change that
    took effect, whoever approved it, leaves a `plan_history` row with a previous plan)."""
    rejected_at = session.scalar(
        sa.select(sa.func.max(AuditLog.at)).where(
            AuditLog.entitlement_id == entitlement_id,
            AuditLog.kind == "change",
            AuditLog.action == "reject_plan_change",
            AuditLog.outcome.in_(("rejected", "already_rejected")),
        )
    )
    if rejected_at is None:
        return False
    changed_since = session.scalar(
        sa.select(PlanHistory.id)
        .where(
            PlanHistory.entitlement_id == entitlement_id,
            PlanHistory.previous_plan.is_not(None),
            PlanHistory.recorded_at >= rejected_at,
        )
        .limit(1)
    )
    return changed_since is None
