"""The customer's service, as Service Control's check finds it.

A check that fails with SERVICE_NOT_ACTIVATED, BILLING_DISABLED or PROJECT_DELETED turns the
customer's service off (reason `servicecontrol:<code>`, an audit row, an `entitlement.suspended`
hook); a later passing check turns a service we turned off back on (`entitlement.restored`).
Outages never do. Both happen in the unit of work that records the check's outcome, under the
entitlement's lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from marketplace_saas.domain.metering import ReportRow
from marketplace_saas.service.audit import record_change
from marketplace_saas.service.hooks.outbox import enqueue_hook
from marketplace_saas.service.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

SUSPENDED_PREFIX = "servicecontrol:"


def suspend(
    uow: UnitOfWork, row: ReportRow, detail: str | None, now: datetime, *, actor: str
) -> bool:
    """Turn the service off after a suspending check error; whether it changed."""
    entitlement = uow.lock_entitlement(row.entitlement_id)
    code = (detail or "").removeprefix("check: ").split(":", 1)[0]
    reason = f"{SUSPENDED_PREFIX}{code}"
    if entitlement is None or entitlement["service_suspended_reason"] == reason:
        return False
    _turn(
        uow,
        entitlement,
        reason,
        ("usage.service_suspended", {"code": code, "detail": detail}),
        (
            "entitlement.suspended",
            f"usage-suspended:{row.entitlement_id}:{row.operation_id}:{row.attempts}",
        ),
        {"reason": reason, "detail": detail},
        row=row,
        now=now,
        actor=actor,
    )
    log.warning("usage.service_suspended", entitlement_id=row.entitlement_id, code=code)
    return True


def maybe_restore(uow: UnitOfWork, row: ReportRow, now: datetime, *, actor: str) -> bool:
    """Turn the service back on after a passing check, if a check turned it off."""
    entitlement = uow.lock_entitlement(row.entitlement_id)
    reason = entitlement["service_suspended_reason"] if entitlement else None
    if entitlement is None or not (reason or "").startswith(SUSPENDED_PREFIX):
        return False
    _turn(
        uow,
        entitlement,
        None,
        ("usage.service_restored", {"previous_reason": reason}),
        ("entitlement.restored", f"usage-restored:{row.entitlement_id}:{row.operation_id}"),
        {"previous_reason": reason},
        row=row,
        now=now,
        actor=actor,
    )
    log.info("usage.service_restored", entitlement_id=row.entitlement_id)
    return True


def _turn(
    uow: UnitOfWork,
    entitlement: dict[str, Any],
    reason: str | None,
    audit: tuple[str, dict[str, Any]],
    hook: tuple[str, str],
    payload: dict[str, Any],
    *,
    row: ReportRow,
    now: datetime,
    actor: str,
) -> None:
    """Serve the customer again (`reason` None) or stop (`reason` says why); audit; hook."""
    entitlement["service_enabled"] = reason is None
    entitlement["service_suspended_reason"] = reason
    uow.entitlements.save(entitlement, new=False)
    action, details = audit
    record_change(
        uow,
        action,
        actor=actor,
        at=now,
        account_id=entitlement["account_id"],
        entitlement_id=row.entitlement_id,
        details={**details, "operation_id": row.operation_id},
    )
    name, key = hook
    enqueue_hook(
        uow,
        name,
        ordering_key=row.entitlement_id,
        idempotency_key=key,
        payload={"entitlement": row.entitlement_id, **payload},
    )
