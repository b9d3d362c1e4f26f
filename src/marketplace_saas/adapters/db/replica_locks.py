"""The locks that let several replicas share one database (see docs/operations.md, "Replicas").

    xact_lock(session, "entitlement", eid)    # until the transaction ends (`lock_entitlement`)
    xact_lock(session, "entitlement", eid, wait=False)   # or LockBusy (a shared group commit)
    with held_lock(engine, "sync") as mine:   # a named lock for a block; False: someone has it
    with report_claims(engine) as claims:     # the reporter's shards: claims.take(k) -> bool
    with migration_lock(url): upgrade...      # waits for the replica that is migrating

PostgreSQL: advisory locks, keyed by a 64-bit hash of a name (`advisory_key`). A transaction lock
(`pg_advisory_xact_lock`) also serialises writers of a row that does not exist yet, which
`SELECT ... FOR UPDATE` cannot. A session lock lives on its own connection for the block; the
server drops it when the connection ends: at once when the holder's process dies (the kernel
closes its socket), within `DEAD_PEER_SECONDS` when its host vanishes (TCP keepalives set on
that connection).

SQLite (one machine, one file): the transaction's write lock serialises writers already; the
named locks are an exclusive `flock` on `<database>.<name>.lock`, released by the kernel when
the holder dies (a process-wide `threading.Lock` for `:memory:`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.engine import create_engine, sqlite_file
from marketplace_saas.adapters.db.errors import LockBusy

REPORT_SHARDS = 32  # the reporter's units of work: entitlements hashed into this many shards
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 4
DEAD_PEER_SECONDS = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT  # 30 s
_MEMORY_LOCKS: dict[str, threading.Lock] = {}
_MEMORY_GUARD = threading.Lock()
_XACT_LOCK = sa.text("SELECT pg_advisory_xact_lock(:key)")
_TRY_XACT_LOCK = sa.text("SELECT pg_try_advisory_xact_lock(:key)")
_TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = sa.text("SELECT pg_advisory_unlock(:key)")
_KEEPALIVES = sa.text(
    f"SET tcp_keepalives_idle = {KEEPALIVE_IDLE}; "
    f"SET tcp_keepalives_interval = {KEEPALIVE_INTERVAL}; "
    f"SET tcp_keepalives_count = {KEEPALIVE_COUNT}"
)


def advisory_key(*parts: str | int) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks, the same in every process."""
    name = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)


def xact_lock(session: Session, kind: str, key: str, *, wait: bool = True) -> None:
    """Hold `kind:key` until the session's transaction ends (PostgreSQL; a no-op elsewhere:
    SQLite's write lock, taken by the locked read that follows, already serialises).
    `wait=False`: raise `LockBusy` at once when another transaction holds it."""
    if session.get_bind().dialect.name != "postgresql":
        return
    params = {"key": advisory_key(kind, key)}
    if wait:
        session.execute(_XACT_LOCK, params)
    elif not session.execute(_TRY_XACT_LOCK, params).scalar():
        raise LockBusy(f"{kind}:{key}")


@contextlib.contextmanager
def _session_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")  # pool_pre_ping may hand a fresh connection
        connection.execute(_KEEPALIVES)
        connection.commit()
        yield connection


class _PgLocks:
    """Session advisory locks on one connection, released at the end (or when it dies)."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.held: list[int] = []

    def take(self, key: int) -> bool:
        got = bool(self.connection.execute(_TRY_LOCK, {"key": key}).scalar())
        self.connection.commit()
        if got:
            self.held.append(key)
        return got

    def release_all(self) -> None:
        for key in self.held:
            self.connection.execute(_UNLOCK, {"key": key})
        self.connection.commit()
        self.held.clear()


def _memory_lock(name: str) -> threading.Lock:
    with _MEMORY_GUARD:
        return _MEMORY_LOCKS.setdefault(name, threading.Lock())


@contextlib.contextmanager
def held_lock(engine: sa.Engine, name: str) -> Iterator[bool]:
    """Hold the lock `name` for the block without waiting: yields False when another holds it."""
    if engine.dialect.name == "postgresql":
        with _session_connection(engine) as connection:
            locks = _PgLocks(connection)
            got = locks.take(advisory_key("lock", name))
            try:
                yield got
            finally:
                locks.release_all()
        return
    file = sqlite_file(engine.url.render_as_string(hide_password=False))
    if file is None:
        lock = _memory_lock(name)
        got = lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                lock.release()
        return
    with open(f"{file}.{name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ShardClaims:
    """The reporter's claims for one run: `take(shard)` is True when this run now owns it."""

    def __init__(self, shards: int, locks: _PgLocks | None, whole: bool) -> None:
        self.shards = shards
        self._locks = locks
        self._whole = whole  # SQLite: one claim covers every shard

    def take(self, shard: int) -> bool:
        if self._locks is None:
            return self._whole
        return self._locks.take(advisory_key("report-usage", shard))


@contextlib.contextmanager
def report_claims(engine: sa.Engine) -> Iterator[ShardClaims]:
    """Claims on the reporter's shards, all released when the block ends or the holder dies.

    PostgreSQL: `REPORT_SHARDS` session advisory locks, taken one by one as a run reaches them,
    so N reporters split the work. SQLite: one shard, the `report-usage` file lock."""
    if engine.dialect.name == "postgresql":
        with _session_connection(engine) as connection:
            locks = _PgLocks(connection)
            try:
                yield ShardClaims(REPORT_SHARDS, locks, whole=False)
            finally:
                locks.release_all()
        return
    with held_lock(engine, "report-usage") as mine:
        yield ShardClaims(1, None, whole=mine)


@contextlib.contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Wait for, then hold, the right to migrate: a session advisory lock on PostgreSQL, a
    blocking `flock` on `<database>.db-upgrade.lock` for a SQLite file."""
    file = sqlite_file(url)
    if file is not None:
        with open(f"{file}.db-upgrade.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # waits; released at close or the holder's death
            yield
        return
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        if engine.dialect.name != "postgresql":
            yield
            return
        key = advisory_key("lock", "db-upgrade")
        with _session_connection(engine) as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(_UNLOCK, {"key": key})
                connection.commit()
    finally:
        engine.dispose()
