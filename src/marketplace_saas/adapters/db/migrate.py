"""Alembic, driven from code: `upgrade(url)` for `db upgrade`, the tests and start-up."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from marketplace_saas.adapters.db.engine import normalise_url, sqlite_file
from marketplace_saas.adapters.db.replica_locks import migration_lock

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to `revision`; replicas starting together migrate one at a time (the others wait
    for `migration_lock`, then find nothing left to do)."""
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def is_up_to_date(engine: sa.Engine) -> bool:
    return current_revision(engine) == head_revision()


def revision_of(url: str) -> str | None:
    """The migration a database is at, read without writing (no pragmas, no file created).

    Raises FileNotFoundError for a SQLite file that does not exist, and the driver's error when
    the database cannot be reached."""
    file = sqlite_file(normalise_url(url))
    if file is not None and not file.exists():
        raise FileNotFoundError(str(file))
    engine = sa.create_engine(normalise_url(url))
    try:
        return current_revision(engine)
    finally:
        engine.dispose()
