"""Console sign-in rules: throttling of failed attempts, and sessions the server can end.

Throttling (docs/security.md): failed sign-ins are counted per operator name (configured names
only, so guessing names fills no table) and per client address, in fixed windows of `WINDOW`;
the count of the current and the previous window decides. At `OPERATOR_LIMIT` failures for an
operator, or `ADDRESS_LIMIT` from an address, every further attempt is refused before the
password is even checked, the right password included, until the counts fall. The counters live
in the database, so replicas sharing it throttle together. A successful sign-in clears the
operator's counter (not the address's).

Sessions: a sign-in writes an `operator_sessions` row whose random id goes in the signed cookie.
A session is valid while its row exists, is not revoked, has not expired, names an operator still
configured, and carries the digest of that operator's current password hash. Logout revokes the
row; an operator found missing from ADMIN_OPERATORS has all their rows revoked, so adding the
name back later does not revive an old cookie.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from marketplace_saas.adapters.metrics import SIGN_INS

if TYPE_CHECKING:
    from marketplace_saas.adapters.operators import Operator, OperatorDirectory
    from marketplace_saas.bootstrap import Container


class SessionRecord(Protocol):
    @property
    def operator(self) -> str: ...
    @property
    def credential(self) -> str: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def revoked_at(self) -> datetime | None: ...


class SignInRepository(Protocol):
    """Failure counters and operator sessions (SQL: `adapters/db/sign_in_store.py`)."""

    def add_failure(self, scope: str, subject: str, bucket: int) -> None:
        """One more failure of (scope, subject) in window `bucket` (atomic, replica-safe)."""

    def failures_since(
        self, subjects: Iterable[tuple[str, str]], first_bucket: int
    ) -> dict[tuple[str, str], int]: ...
    def forget_failures(self, scope: str, subject: str) -> None: ...
    def prune_failures(self, before_bucket: int) -> None: ...
    def add_session(
        self,
        session_id: str,
        operator: str,
        credential: str,
        *,
        created_at: datetime,
        expires_at: datetime,
    ) -> None: ...
    def find_session(self, session_id: str) -> SessionRecord | None: ...
    def revoke_session(self, session_id: str, at: datetime) -> None: ...
    def revoke_operator_sessions(self, operator: str, at: datetime) -> int:
        """End every live session of `operator`; how many were live."""

    def prune_sessions(self, expired_before: datetime) -> None: ...


WINDOW = timedelta(minutes=15)
OPERATOR_LIMIT = 10
ADDRESS_LIMIT = 30
SESSION_LIFETIME = timedelta(hours=8)


@dataclass(frozen=True)
class Throttled:
    """Sign-in refused without checking the password; `retry_after` in whole seconds."""

    retry_after: int

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.retry_after / 60))
        return (
            "Too many failed sign-ins for this operator or from this address. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )


def _bucket(moment: datetime) -> int:
    return int(moment.timestamp() // WINDOW.total_seconds())


def _subjects(name: str | None, address: str) -> list[tuple[str, str]]:
    subjects = [("address", address[:200])]
    if name:
        subjects.append(("operator", name[:200]))
    return subjects


@dataclass(frozen=True)
class Gate:
    """What the counters say before a sign-in: wait (`throttled`), or go ahead."""

    throttled: Throttled | None
    operator_failures: int


def gate(container: Container, name: str | None, address: str) -> Gate:
    """Whether `name` (a configured operator, or None) from `address` must wait."""
    now = container.now()
    current = _bucket(now)
    with container.reading() as uow:
        counts = uow.sign_in.failures_since(_subjects(name, address), current - 1)
    by_operator = counts.get(("operator", name[:200]), 0) if name else 0
    over = counts.get(("address", address[:200]), 0) >= ADDRESS_LIMIT
    if not over and by_operator < OPERATOR_LIMIT:
        return Gate(None, by_operator)
    window_end = (current + 1) * WINDOW.total_seconds()
    return Gate(Throttled(max(1, math.ceil(window_end - now.timestamp()))), by_operator)


def record_failure(container: Container, name: str | None, address: str, *, method: str) -> None:
    """Count a failed sign-in: against the address, and the operator when `name` is one."""
    current = _bucket(container.now())
    with container.unit_of_work() as uow:
        for scope, subject in _subjects(name, address):
            uow.sign_in.add_failure(scope, subject, current)
        uow.sign_in.prune_failures(current - 1)
    SIGN_INS.labels(method, "refused").inc()


def record_success(container: Container, name: str, *, method: str, after: Gate) -> None:
    """A good sign-in clears the operator's failures (a write only when there were some)."""
    if after.operator_failures:
        with container.unit_of_work() as uow:
            uow.sign_in.forget_failures("operator", name)
    SIGN_INS.labels(method, "ok").inc()


def record_throttled(method: str) -> None:
    SIGN_INS.labels(method, "throttled").inc()


def start_session(container: Container, operator: Operator, directory: OperatorDirectory) -> str:
    """A new session row for `operator`; its id (for the signed cookie)."""
    session_id = secrets.token_urlsafe(32)
    now = container.now()
    with container.unit_of_work() as uow:
        uow.sign_in.prune_sessions(now)
        uow.sign_in.add_session(
            session_id,
            operator.name,
            directory.fingerprint(operator.name),
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    return session_id


def session_operator(
    container: Container, session_id: object, name: object, directory: OperatorDirectory
) -> Operator | None:
    """The operator of a live session; None (and the session ended) when it is not valid."""
    if not isinstance(session_id, str) or not isinstance(name, str) or not session_id:
        return None
    now = container.now()
    with container.reading() as uow:
        row = uow.sign_in.find_session(session_id[:64])
        if row is None or row.operator != name or row.revoked_at is not None:
            return None
        if row.expires_at <= now:
            return None
        credential = row.credential
    operator = directory.get(name)
    if operator is None:
        revoke_operator(container, name)
        return None
    if credential != directory.fingerprint(name):
        end_session(container, session_id)
        return None
    return operator


def end_session(container: Container, session_id: object) -> None:
    if isinstance(session_id, str) and session_id:
        with container.unit_of_work() as uow:
            uow.sign_in.revoke_session(session_id[:64], container.now())


def revoke_operator(container: Container, name: str) -> int:
    """End every session of `name` (removed from ADMIN_OPERATORS); how many were live."""
    with container.unit_of_work() as uow:
        return uow.sign_in.revoke_operator_sessions(name, container.now())
