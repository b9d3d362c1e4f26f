"""The listener's hot statements on PostgreSQL, run on the session's psycopg connection.

    direct = Direct(session)                    # in the session's transaction, one cursor
    known_entitlement(direct, eid)              # the same SQL and rows as `repositories`
    direct.many(INBOX_SETTLE, rows)             # a deferred kind: one executemany

A statement through `Session.execute` costs the listener's process about 100 to 200 µs of CPU
(SQLAlchemy's execution context, result metadata, psycopg's column descriptions), one through a
psycopg cursor about 20 to 30 µs; a notification runs about eight (docs/performance.md, "The
listener's statements through psycopg"). `unit_of_work` uses these on PostgreSQL for the
listener's hot path only; SQLite, and every other statement, keep `repositories`.

Each function does what its SQLAlchemy counterpart does, value for value: the same columns,
`UtcDateTime`'s rules (aware times only, written and read back in UTC), JSON written as JSONB,
SQLAlchemy's Python-side defaults for a column not given (`created_at`, `updated_at` on an
UPDATE, `received_at`...), and a database error raised as SQLAlchemy's own exception class
(`IntegrityError`, `OperationalError`: the inbox's ack or nack decisions read those), the
connection invalidated when the error says it is gone. Statements are prepared on the server
the first time a connection runs them (`prepare=True`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from psycopg import sql as pgsql
from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db import repositories as repo
from marketplace_saas.adapters.db.errors import LockBusy
from marketplace_saas.adapters.db.models import (
    AuditLog,
    Entitlement,
    HookOutbox,
    InboxMessage,
    PlanHistory,
    UtcDateTime,
)
from marketplace_saas.adapters.db.replica_locks import advisory_key
from marketplace_saas.domain.hooks import AccountInfo, CustomerInfo
from marketplace_saas.domain.records import KnownEntitlement


class Direct:
    """Runs SQL on a session's psycopg connection, in the session's transaction."""

    __slots__ = ("_connection", "_cursor", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self._connection: sa.Connection | None = None
        self._cursor: psycopg.Cursor[Any] | None = None

    def _cursor_now(self) -> psycopg.Cursor[Any]:
        if self._cursor is None:
            self._connection = self.session.connection()  # begins the session's transaction
            driver = cast(psycopg.Connection[Any], self._connection.connection.driver_connection)
            self._cursor = driver.cursor()
        return self._cursor

    def one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """Run `sql`, a statement that returns rows; its first row (None: no row)."""
        cursor = self._cursor_now()
        try:
            cursor.execute(sql, params, prepare=True)
            row: tuple[Any, ...] | None = cursor.fetchone()
        except psycopg.Error as exc:
            raise self._failed(exc, sql, params) from exc
        return row

    def run(self, sql: str, params: Sequence[Any]) -> None:
        """Run `sql`, returning nothing."""
        cursor = self._cursor_now()
        try:
            cursor.execute(sql, params, prepare=True)
        except psycopg.Error as exc:
            raise self._failed(exc, sql, params) from exc

    def many(self, statement: Many, rows: list[dict[str, Any]]) -> None:
        """`statement` once per row, in one round trip (psycopg pipelines an executemany)."""
        cursor = self._cursor_now()
        params = [statement.params(row) for row in rows]
        try:
            if len(params) == 1:
                cursor.execute(statement.sql, params[0], prepare=True)
            else:
                cursor.executemany(statement.sql, params)
        except psycopg.Error as exc:
            raise self._failed(exc, statement.sql, params) from exc

    def _failed(self, exc: psycopg.Error, sql: str, params: Any) -> sa.exc.DBAPIError:
        """SQLAlchemy's exception for `exc`, as `Session.execute` would raise it; a connection
        the error shows is gone is invalidated (the pool will not hand it out again)."""
        connection = self._connection
        assert connection is not None  # a cursor exists only once the connection is known
        dialect = connection.dialect
        driver: Any = connection.connection.driver_connection
        gone = dialect.is_disconnect(cast(Any, exc), driver, cast(Any, self._cursor))
        if gone:
            connection.invalidate(exc)
        return cast(
            sa.exc.DBAPIError,
            sa.exc.DBAPIError.instance(
                sql, params, exc, psycopg.Error, connection_invalidated=gone, dialect=dialect
            ),
        )


# -- values as SQLAlchemy's column types write and read them -----------------------------------


def utc_in(value: datetime | None) -> datetime | None:
    """`UtcDateTime.process_bind_param` on PostgreSQL."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


def utc_out(value: datetime | None) -> datetime | None:
    """`UtcDateTime.process_result_value`: psycopg reads a time in the session's time zone."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _same(value: Any) -> Any:
    return value


def bind_failed(exc: Exception, sql: str, params: Any) -> sa.exc.StatementError:
    """What SQLAlchemy raises when a column type refuses a value (a naive time)."""
    name = f"{type(exc).__module__}.{type(exc).__name__}"
    return sa.exc.StatementError(f"({name}) {exc}", sql, params, exc)


def _bind(column: sa.Column[Any]) -> Callable[[Any], Any]:
    if isinstance(column.type, UtcDateTime):
        return utc_in
    if isinstance(column.type, sa.JSON):
        return Jsonb  # SQLAlchemy's JSON on psycopg: a Python None is JSON null too
    return _same


def _default(column: sa.Column[Any], *, onupdate: bool = False) -> Callable[[], Any] | None:
    """The column's Python-side INSERT (or `onupdate`: UPDATE) default as a function of
    nothing (None: it has none)."""
    default = column.onupdate if onupdate else column.default
    if default is None:
        return None
    if getattr(default, "is_callable", False):
        wrapped = cast(Callable[[Any], Any], default.arg)  # type: ignore[attr-defined]
        return lambda: wrapped(None)  # SQLAlchemy wraps a zero-argument default in f(context)
    value = default.arg  # type: ignore[attr-defined]
    return lambda: value


class Many:
    """An INSERT or UPDATE run once per row dict (`Direct.many`); `params(row)` binds a row as
    SQLAlchemy would: each column's bind rule, and the Python default of a column left out."""

    __slots__ = ("binds", "sql")

    def __init__(self, sql: str, binds: list[tuple[str, Callable[[Any], Any], Any]]) -> None:
        self.sql = sql
        self.binds = binds  # (key, bind rule, default function or None)

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        try:
            for key, bind, default in self.binds:
                if key in row:
                    out.append(bind(row[key]))
                else:
                    out.append(bind(default()) if default is not None else None)
        except (TypeError, ValueError) as exc:
            raise bind_failed(exc, self.sql, row) from exc
        return tuple(out)


def _table(model: Any) -> sa.Table:
    return cast(sa.Table, model.__table__)


def _names(names: Sequence[str]) -> pgsql.Composable:
    return pgsql.SQL(", ").join(pgsql.Identifier(name) for name in names)


def _placeholders(count: int) -> pgsql.Composable:
    return pgsql.SQL(", ").join([pgsql.Placeholder()] * count)


def _text(template: str, *parts: pgsql.Composable) -> str:
    """`template` with its `{}` filled by quoted names (from the models, never from input)."""
    return pgsql.SQL(template).format(*parts).as_string()


def insert(model: Any, *, on_conflict: str | None = None, returning: str | None = None) -> Many:
    """INSERT of every column of `model`'s table but a generated integer `id`."""
    table = _table(model)
    columns = [c for c in table.c if not (c.primary_key and isinstance(c.type, sa.Integer))]
    sql = _text(
        "INSERT INTO {} ({}) VALUES ({})",
        pgsql.Identifier(table.name),
        _names([c.name for c in columns]),
        _placeholders(len(columns)),
    )
    if on_conflict:
        sql += _text(" ON CONFLICT ({}) DO NOTHING", pgsql.Identifier(on_conflict))
    if returning:
        sql += _text(" RETURNING {}", pgsql.Identifier(returning))
    return Many(sql, [(c.name, _bind(c), _default(c)) for c in columns])


# -- the inbox -----------------------------------------------------------------------------------

INBOX_INSERT = insert(InboxMessage, on_conflict="event_id", returning="id")
INBOX_SETTLE = Many(
    "UPDATE inbox SET status = %s, attempts = inbox.attempts + 1, processed_at = %s, "
    "last_error = %s, traceback = NULL WHERE inbox.event_id = %s",
    [
        ("status", _same, None),
        ("processed_at", utc_in, None),
        ("last_error", _same, None),
        ("key", _same, None),
    ],
)
AUDIT_INSERT = insert(AuditLog)
OUTBOX_INSERT = insert(HookOutbox, on_conflict="idempotency_key")
_PLAN_HISTORY_INSERT = insert(PlanHistory)


def insert_inbox(direct: Direct, values: dict[str, Any]) -> bool:
    """`repositories.insert_inbox`: whether the row was inserted (its eventId was new)."""
    return direct.one(INBOX_INSERT.sql, INBOX_INSERT.params(values)) is not None


# -- entitlements --------------------------------------------------------------------------------

_ENTITLEMENTS = _table(Entitlement)
# Every column the lifecycle writes, in `repositories.ENTITLEMENT_COLUMNS`' order.
_COLUMNS = tuple(c for c in _ENTITLEMENTS.c if c.name not in ("created_at", "updated_at"))
_NAMES = tuple(c.name for c in _COLUMNS)
_READ = tuple(utc_out if isinstance(c.type, UtcDateTime) else None for c in _COLUMNS)
_WRITE = tuple(_bind(c) for c in _COLUMNS)
_SELECT_FOR_UPDATE = _text(
    "SELECT {} FROM entitlements WHERE entitlements.id = %s FOR UPDATE", _names(_NAMES)
)
_INSERT = _text(
    "INSERT INTO entitlements ({}) VALUES ({})",
    _names([*_NAMES, "created_at", "updated_at"]),
    _placeholders(len(_NAMES) + 2),
)
_UPDATE = _text(
    "UPDATE entitlements SET {} WHERE entitlements.id = %s",
    pgsql.SQL(", ").join(
        pgsql.SQL("{} = %s").format(pgsql.Identifier(name)) for name in [*_NAMES[1:], "updated_at"]
    ),
)
_CREATED = cast(Callable[[], datetime], _default(_ENTITLEMENTS.c.created_at))
_UPDATED = cast(Callable[[], datetime], _default(_ENTITLEMENTS.c.updated_at))
_TOUCHED = cast(Callable[[], datetime], _default(_ENTITLEMENTS.c.updated_at, onupdate=True))
_XACT_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_TRY_XACT_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"


def xact_lock(direct: Direct, kind: str, key: str, *, wait: bool) -> None:
    """`replica_locks.xact_lock` on PostgreSQL."""
    params = (advisory_key(kind, key),)
    if wait:
        direct.one(_XACT_LOCK, params)
    else:
        got = direct.one(_TRY_XACT_LOCK, params)
        if got is None or not got[0]:
            raise LockBusy(f"{kind}:{key}")


def entitlement_for_update(direct: Direct, entitlement_id: str) -> dict[str, Any] | None:
    """`repositories.entitlement_values(..., locked=True)`: the row's columns, locked."""
    row = direct.one(_SELECT_FOR_UPDATE, (entitlement_id,))
    if row is None:
        return None
    return {
        name: read(value) if read is not None else value
        for name, read, value in zip(_NAMES, _READ, row, strict=True)
    }


def save_entitlement(direct: Direct, values: dict[str, Any], *, new: bool) -> None:
    """`repositories.save_entitlement`: every column, an INSERT when `new`, else one UPDATE."""
    try:
        params = [write(values[name]) for name, write in zip(_NAMES, _WRITE, strict=True)]
    except (TypeError, ValueError) as exc:
        raise bind_failed(exc, _INSERT if new else _UPDATE, values) from exc
    if new:
        direct.run(_INSERT, (*params, utc_in(_CREATED()), utc_in(_UPDATED())))
    else:
        direct.run(_UPDATE, (*params[1:], utc_in(_TOUCHED()), params[0]))
    session = direct.session
    cached = session.identity_map.get(session.identity_key(Entitlement, values["id"]))
    if cached is not None:
        session.expire(cached)


_KNOWN = (
    "SELECT entitlements.google_update_time, entitlements.account_id, accounts.id, "
    "accounts.google_update_time, accounts.signed_up_at FROM entitlements "
    "LEFT OUTER JOIN accounts ON accounts.id = entitlements.account_id "
    "WHERE entitlements.id = %s"
)


def known_entitlement(direct: Direct, entitlement_id: str) -> KnownEntitlement | None:
    """`repositories.known_entitlement`."""
    row = direct.one(_KNOWN, (entitlement_id,))
    if row is None:
        return None
    applied, account_id, account_found, account_applied, signed_up_at = row
    return repo.known_from_row(
        (utc_out(applied), account_id, account_found, utc_out(account_applied), signed_up_at)
    )


# -- plan history and the hooks' parties ---------------------------------------------------------

_PREVIOUS_PLAN = (
    "SELECT plan_history.previous_plan FROM plan_history "
    "WHERE plan_history.entitlement_id = %s "
    "ORDER BY plan_history.effective_at DESC, plan_history.id DESC LIMIT 1"
)


def add_plan_history(direct: Direct, values: dict[str, Any]) -> None:
    """`repositories.add_plan_history`."""
    direct.run(_PLAN_HISTORY_INSERT.sql, _PLAN_HISTORY_INSERT.params(values))


def previous_plan(direct: Direct, entitlement_id: str) -> str | None:
    """`SqlPlanHistory.previous_plan`. Its SQLAlchemy statement is an ORM one, which flushes the
    session's pending ORM changes first: so does this."""
    session = direct.session
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()
    row = direct.one(_PREVIOUS_PLAN, (entitlement_id,))
    return cast(str | None, row[0]) if row is not None else None


_PARTIES = (
    "SELECT accounts.id, accounts.state, accounts.signup_approval, accounts.customer_id, "
    "customers.id, customers.name, customers.email, customers.company FROM accounts "
    "LEFT OUTER JOIN customers ON customers.id = accounts.customer_id WHERE accounts.id = %s"
)


def hook_parties(direct: Direct, account_id: str) -> tuple[AccountInfo, CustomerInfo | None]:
    """`SqlAccounts.hook_parties`."""
    return repo.parties_from_row(account_id, direct.one(_PARTIES, (account_id,)))
