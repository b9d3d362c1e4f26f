"""The database's failures the use cases tell apart, under their own names.

    OperationalError   unreachable, locked, a serialization failure: try again later
    IntegrityError     a unique key met (a concurrent writer inserted the row first)
    LockBusy           (an OperationalError) a lock a shared group-commit transaction would
                       have waited for; the group commit runs that batch's works alone

They are SQLAlchemy's own classes, re-exported so that `service/` need not import SQLAlchemy.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError, OperationalError

__all__ = ["IntegrityError", "LockBusy", "OperationalError"]


class LockBusy(OperationalError):
    """Another transaction holds a lock this one was told not to wait for."""

    def __init__(self, name: str) -> None:
        super().__init__(f"lock {name} is held by another transaction", None, Exception(name))
