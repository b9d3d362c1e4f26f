"""The per-test migrated database fixture: at head, and isolated between tests."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from marketplace_saas.adapters.db import migrate
from marketplace_saas.adapters.db.engine import create_engine, session_factory
from marketplace_saas.adapters.db.models import Customer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_an_empty_database_at_head(migrated_database_url: str, round_: int) -> None:
    """Rows written by one test are not seen by the next (run twice to prove it)."""
    engine = create_engine(migrated_database_url)
    try:
        assert migrate.is_up_to_date(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(Customer)) == 0
            session.add(Customer(id=f"c-{round_}", name="Ada"))
    finally:
        engine.dispose()
