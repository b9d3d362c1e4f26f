"""`db upgrade`: migrate the database to the latest schema."""

from __future__ import annotations

import argparse
from typing import Any

from marketplace_saas.entrypoints.cli._output import add_json_flag, emit


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="the database schema")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = commands.add_parser("upgrade", help="apply every pending migration")
    add_json_flag(upgrade)
    upgrade.set_defaults(run=run_upgrade)


def run_upgrade(args: argparse.Namespace) -> int:
    # Alembic and SQLAlchemy (~1.5 s to import) load only when this command runs.
    from marketplace_saas.adapters.db import migrate
    from marketplace_saas.adapters.db.engine import create_engine
    from marketplace_saas.config import Settings

    settings = Settings()
    migrate.upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        revision = migrate.current_revision(engine)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    emit(
        args,
        {"database": url, "revision": revision},
        message=f"database {url} is at revision {revision}",
    )
    return 0
