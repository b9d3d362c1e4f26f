"""The chaos run's checks can fail: each one here is given a database that breaks its rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from marketplace_saas.adapters.db.models import AuditLog, Base
from tests.reliability import checks


@dataclass
class _Stack:
    database_url: str


def _audit(tmp_path: Path, rows: list[tuple[str, str, str | None]]) -> _Stack:
    """A database whose audit log holds `rows` (entitlement id, action, version), in order."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine, tables=[AuditLog.__table__])  # type: ignore[list-item]
    with engine.begin() as conn:
        for number, (entitlement_id, action, version) in enumerate(rows):
            conn.execute(
                sa.insert(AuditLog).values(
                    at=datetime(2026, 12, 7, 12, number, tzinfo=UTC),
                    kind="change",
                    action=action,
                    actor=f"replica-{number}",
                    entitlement_id=entitlement_id,
                    event_id=f"event-{number}",
                    details={"changes": {}, "hooks": [], "version": version},
                )
            )
    engine.dispose()
    return _Stack(url)


def test_versions_that_go_back_are_reported_with_who_wrote_them(tmp_path: Path) -> None:
    stack = _audit(
        tmp_path,
        [
            ("e1", "entitlement.created", "2026-12-07T10:00:00Z"),
            ("e2", "entitlement.created", "2026-12-07T10:00:00Z"),
            ("e1", "entitlement.updated", "2026-12-07T10:05:00Z"),
            ("e2", "entitlement.updated", "2026-12-07T10:00:00Z"),  # the same version: fine
            ("e1", "entitlement.updated", "2026-12-07T10:03:00Z"),  # back: two writers raced
            ("e1", "entitlement.deleted", None),  # no version: not compared
        ],
    )
    [problem] = checks.versions_never_go_back(stack)  # type: ignore[arg-type]
    assert problem.startswith("entitlement e1: version 2026-12-07T10:03:00Z written by replica-4")
    assert "after 2026-12-07T10:05:00Z by replica-2" in problem


def test_versions_that_only_go_forward_pass(tmp_path: Path) -> None:
    stack = _audit(
        tmp_path,
        [
            ("e1", "entitlement.created", "2026-12-07T10:00:00Z"),
            ("e1", "entitlement.updated", "2026-12-07T10:00:00Z"),
            ("e1", "entitlement.updated", "2026-12-07T11:00:00Z"),
        ],
    )
    assert checks.versions_never_go_back(stack) == []  # type: ignore[arg-type]
