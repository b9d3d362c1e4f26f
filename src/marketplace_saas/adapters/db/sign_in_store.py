"""Rows of console sign-in security: failure counters and server-side sessions.

Failure counters are one row per (scope, subject, bucket): `scope` is `operator` or `address`,
`bucket` the number of the fixed time window. `add_failure` is one atomic
`INSERT ... ON CONFLICT DO UPDATE failures = failures + 1`, so replicas sharing the database
count together without locks. The caller owns the transaction: `SqlSignIn` is these functions on
the session of a unit of work (`uow.sign_in`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import OperatorSession, SignInFailure
from marketplace_saas.adapters.db.repositories import dialect_of

_FAILURES = cast(sa.Table, SignInFailure.__table__)
_SESSIONS = cast(sa.Table, OperatorSession.__table__)


def _upsert(dialect: Any) -> Any:
    statement = dialect.insert(_FAILURES)
    return statement.on_conflict_do_update(
        index_elements=["scope", "subject", "bucket"],
        set_={"failures": _FAILURES.c.failures + 1},
    )


_ADD_FAILURE = {"postgresql": _upsert(postgresql), "sqlite": _upsert(sqlite)}


def add_failure(session: Session, scope: str, subject: str, bucket: int) -> None:
    """Count one failed sign-in of `subject` in window `bucket`."""
    statement = _ADD_FAILURE[dialect_of(session)]
    session.execute(
        statement, {"scope": scope, "subject": subject, "bucket": bucket, "failures": 1}
    )


def failures_since(
    session: Session, subjects: Iterable[tuple[str, str]], first_bucket: int
) -> dict[tuple[str, str], int]:
    """Failures per (scope, subject) in windows `first_bucket` and later."""
    wanted = list(subjects)
    if not wanted:
        return {}
    rows = session.execute(
        sa.select(_FAILURES.c.scope, _FAILURES.c.subject, sa.func.sum(_FAILURES.c.failures))
        .where(sa.tuple_(_FAILURES.c.scope, _FAILURES.c.subject).in_(wanted))
        .where(_FAILURES.c.bucket >= first_bucket)
        .group_by(_FAILURES.c.scope, _FAILURES.c.subject)
    )
    return {(scope, subject): int(total or 0) for scope, subject, total in rows}


def forget_failures(session: Session, scope: str, subject: str) -> None:
    session.execute(
        sa.delete(_FAILURES).where(_FAILURES.c.scope == scope, _FAILURES.c.subject == subject)
    )


def prune_failures(session: Session, before_bucket: int) -> None:
    """Drop counters of windows that no longer count."""
    session.execute(sa.delete(_FAILURES).where(_FAILURES.c.bucket < before_bucket))


def add_session(
    session: Session,
    session_id: str,
    operator: str,
    credential: str,
    *,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    session.add(
        OperatorSession(
            id=session_id,
            operator=operator,
            credential=credential,
            created_at=created_at,
            expires_at=expires_at,
        )
    )


def find_session(session: Session, session_id: str) -> OperatorSession | None:
    return session.get(OperatorSession, session_id)


def revoke_session(session: Session, session_id: str, at: datetime) -> None:
    session.execute(
        sa.update(_SESSIONS)
        .where(_SESSIONS.c.id == session_id, _SESSIONS.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )


def revoke_operator_sessions(session: Session, operator: str, at: datetime) -> int:
    """End every live session of `operator`; how many were live."""
    result = session.execute(
        sa.update(_SESSIONS)
        .where(_SESSIONS.c.operator == operator, _SESSIONS.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def prune_sessions(session: Session, expired_before: datetime) -> None:
    session.execute(sa.delete(_SESSIONS).where(_SESSIONS.c.expires_at < expired_before))


class SqlSignIn:
    """Sign-in counters and sessions on one unit of work's session (`uow.sign_in`)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_failure(self, scope: str, subject: str, bucket: int) -> None:
        add_failure(self.session, scope, subject, bucket)

    def failures_since(
        self, subjects: Iterable[tuple[str, str]], first_bucket: int
    ) -> dict[tuple[str, str], int]:
        return failures_since(self.session, subjects, first_bucket)

    def forget_failures(self, scope: str, subject: str) -> None:
        forget_failures(self.session, scope, subject)

    def prune_failures(self, before_bucket: int) -> None:
        prune_failures(self.session, before_bucket)

    def add_session(
        self,
        session_id: str,
        operator: str,
        credential: str,
        *,
        created_at: datetime,
        expires_at: datetime,
    ) -> None:
        add_session(
            self.session,
            session_id,
            operator,
            credential,
            created_at=created_at,
            expires_at=expires_at,
        )

    def find_session(self, session_id: str) -> OperatorSession | None:
        return find_session(self.session, session_id)

    def revoke_session(self, session_id: str, at: datetime) -> None:
        revoke_session(self.session, session_id, at)

    def revoke_operator_sessions(self, operator: str, at: datetime) -> int:
        return revoke_operator_sessions(self.session, operator, at)

    def prune_sessions(self, expired_before: datetime) -> None:
        prune_sessions(self.session, expired_before)
