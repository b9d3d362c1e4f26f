"""The provisioning-hook outbox: hooks are written in the same transaction as the change.

`enqueue_hook` inserts one `hook_outbox` row in the caller's session and transaction; a row with
the same `idempotency_key` already there is left alone, so applying a change twice raises its hook
once. Delivery (retries, ordering per `ordering_key`) lives with the hooks adapter.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import HookOutbox, utcnow

# Both dialects spell "insert unless the unique key exists" the same way.
_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

HOOK_NAMES = frozenset(
    {
        "customer.signed_up",
        "entitlement.active",
        "entitlement.plan_changed",
        "entitlement.pending_cancellation",
        "entitlement.cancellation_reverted",
        "entitlement.cancelled",
        "entitlement.suspended",
        "entitlement.restored",
        "account.deleted",
        "entitlement.offer_ended",
        "entitlement.renewed",
    }
)


def enqueue_hook(
    session: Session,
    hook: str,
    *,
    ordering_key: str,
    idempotency_key: str,
    payload: dict[str, Any],
) -> None:
    """Queue `hook` in the caller's transaction; a repeated `idempotency_key` is ignored."""
    if hook not in HOOK_NAMES:
        raise ValueError(f"unknown hook {hook!r}; known hooks: {sorted(HOOK_NAMES)}")
    if not idempotency_key or len(idempotency_key) > 200:
        raise ValueError("idempotency_key must be 1 to 200 characters")
    now = utcnow()
    values = {
        "hook": hook,
        "idempotency_key": idempotency_key,
        "ordering_key": ordering_key,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:  # pragma: no cover - the project supports these two only
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    statement = _INSERTS[dialect](HookOutbox).values(**values)
    session.execute(statement.on_conflict_do_nothing(index_elements=["idempotency_key"]))
