"""The provisioning-hook outbox: hooks are written in the same transaction as the change.

    enqueue_hook(uow, hook, ordering_key=..., idempotency_key=..., payload=...)

inserts one `hook_outbox` row in the caller's unit of work (`uow.outbox`); a row with the same
`idempotency_key` already there is left alone, so applying a change twice raises its hook once.
`payload` is a `HookPayload` (build one with `service.hooks.payloads.build_payload`), or a mapping:
one in the `HookPayload` shape is stored as is; one naming only ids (`entitlementId`,
`accountId`, or `entitlement` as a bare id) is filled in from our records, the original kept under
`extra`, so that every receiver sees the same shape. Delivery (retries, ordering per
`ordering_key`) is `service.hooks.dispatch`; operator actions are `service.hooks.admin`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from marketplace_saas.domain.hooks import HOOK_NAMES, HookPayload, HookStatus
from marketplace_saas.service.hooks.payloads import coerce_payload
from marketplace_saas.service.unit_of_work import UnitOfWork

__all__ = ["HOOK_NAMES", "enqueue_hook"]


def enqueue_hook(
    uow: UnitOfWork,
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
    now = datetime.now(UTC)
    values = {
        "hook": hook,
        "idempotency_key": idempotency_key,
        "ordering_key": ordering_key,
        "payload": coerce_payload(uow, hook, ordering_key, payload),
        "status": HookStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    uow.outbox.add(values)
