"""The database's failures the use cases tell apart, under their own names.

    OperationalError   unreachable, locked, a serialization failure: try again later
    IntegrityError     a unique key met (a concurrent writer inserted the row first)

They are SQLAlchemy's own classes, re-exported so that `service/` need not import SQLAlchemy.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError, OperationalError

__all__ = ["IntegrityError", "OperationalError"]
