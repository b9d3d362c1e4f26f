"""The provisioning-hook outbox: hooks are written in the same transaction as the change.

    enqueue_hook(session, hook, ordering_key=..., idempotency_key=..., payload=...)

inserts one `hook_outbox` row in the caller's session and transaction; a row with the same
`idempotency_key` already there is left alone, so applying a change twice raises its hook once.
`payload` is a `HookPayload` (build one with `service.hook_payloads.build_payload`), or a mapping:
one in the `HookPayload` shape is stored as is; one naming only ids (`entitlementId`,
`accountId`, or `entitlement` as a bare id) is filled in from our records, the original kept under
`extra`, so that every receiver sees the same shape. Delivery (retries, ordering per
`ordering_key`) is `service.hooks`; operator actions are `service.hooks_admin`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from marketplace_saas.adapters.db.models import HookOutbox, utcnow
from marketplace_saas.adapters.db.repositories import dialect_of, insert_skipping_duplicates
from marketplace_saas.domain.hooks import HOOK_NAMES, HookPayload, HookStatus
from marketplace_saas.service.hook_payloads import coerce_payload

__all__ = ["HOOK_NAMES", "enqueue_hook"]

# Built once (the listener enqueues on its hot path); the values are bound at execution.
_OUTBOX = cast(sa.Table, HookOutbox.__table__)
_INSERT = insert_skipping_duplicates(_OUTBOX, "idempotency_key")


def enqueue_hook(
    session: Session,
    hook: str,
    *,
    ordering_key: str,
    idempotency_key: str,
    payload: HookPayload | Mapping[str, Any],
) -> None:
    """Queue `hook` in the caller's transaction; a repeated `idempotency_key` is ignored."""
    if hook not in HOOK_NAMES:
        raise ValueError(f"unknown hook {hook!r}; known hooks: {sorted(HOOK_NAMES)}")
    if not idempotency_key or len(idempotency_key) > 200:
        raise ValueError("idempotency_key must be 1 to 200 characters")
    if not ordering_key or len(ordering_key) > 200:
        raise ValueError("ordering_key must be 1 to 200 characters")
    now = utcnow()
    values = {
        "hook": hook,
        "idempotency_key": idempotency_key,
        "ordering_key": ordering_key,
        "payload": coerce_payload(session, hook, ordering_key, payload),
        "status": HookStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    session.execute(_INSERT[dialect_of(session)], values)
