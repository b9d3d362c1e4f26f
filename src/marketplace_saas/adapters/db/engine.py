"""Engines and sessions for SQLite (default) and PostgreSQL; `check_database(url)` says in one
sentence why a DATABASE_URL cannot be used (unparsable, no driver, unreachable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from marketplace_saas.config import ConfigurationError


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


# PostgreSQL connections a process keeps open for reuse, and the most it opens at once (as
# SQLAlchemy's default 5 + 10 overflow). With 5 kept, the listener's 10 worker threads closed the
# surplus connections after each transaction and opened new ones: a new server process, its
# start-up and authentication, every few notifications.
PG_POOL_SIZE = 15


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = sa.create_engine(url, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", PG_POOL_SIZE)
        kwargs.setdefault("max_overflow", 0)
    return sa.create_engine(url, **kwargs)


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def ping(engine: sa.Engine) -> None:
    """Raise unless the database answers a trivial query."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def safe_url(url: str) -> str:
    """The database URL as it may be printed: the password hidden."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for an in-memory one or another database."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")


def check_database(url: str, *, connect_timeout: int = 10) -> None:
    """Parse `url`, load its driver and connect once; a ConfigurationError naming DATABASE_URL
    and the problem when any of these fails."""
    try:
        parsed = sa.engine.make_url(normalise_url(url))
    except sa.exc.ArgumentError:
        raise ConfigurationError(
            "DATABASE_URL is not a database URL (expected e.g. sqlite:///marketplace.db or "
            "postgresql://user@host/db)"
        ) from None
    shown = safe_url(url)
    try:
        parsed.get_dialect().import_dbapi()
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(
            f"DATABASE_URL {shown}: no driver for {parsed.drivername!r} is installed ({exc}); "
            "this service supports sqlite:// and postgresql://"
        ) from None
    args = {} if parsed.get_backend_name() == "sqlite" else {"connect_timeout": connect_timeout}
    engine = create_engine(url, connect_args=args) if args else create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        hint = ""
        database = sqlite_file(url)
        if database is not None and not database.parent.is_dir():
            hint = f" (the directory {database.parent} does not exist)"
        raise ConfigurationError(f"DATABASE_URL {shown}: cannot connect: {reason}{hint}") from None
    finally:
        engine.dispose()
