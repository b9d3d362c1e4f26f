"""The provisioning hooks a change to an entitlement raises, queued in the unit of work that
records it (`records.apply_entitlement`), with the payload built from the row as written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplace_saas.domain.events import Hook
from marketplace_saas.service.hooks.outbox import enqueue_hook
from marketplace_saas.service.hooks.payloads import build_payload
from marketplace_saas.service.unit_of_work import UnitOfWork


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class Written:
    """An entitlement as the transaction writes it: what its hooks' payloads are built from."""

    id: str
    account_id: str
    state: str
    product: str | None
    plan: str | None
    new_pending_plan: str | None
    usage_reporting_id: str | None
    offer: str | None
    offer_end_time: datetime | None
    subscription_end_time: datetime | None
    cancellation_reason: str | None
    service_plan: str | None
    service_suspended_reason: str | None
    deleted_at: datetime | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, row: dict[str, Any]) -> Written:
        return cls(**{name: row[name] for name in _WRITTEN_FIELDS})


_WRITTEN_FIELDS = tuple(Written.__dataclass_fields__)


def _hook_payload(row: Written, event_id: str | None) -> dict[str, Any]:
    return {
        "entitlementId": row.id,
        "accountId": row.account_id,
        "product": row.product,
        "plan": row.service_plan or row.plan,
        "state": row.state,
        "usageReportingId": row.usage_reporting_id,
        "offerEndTime": _iso(row.offer_end_time),
        "eventId": event_id,
        "deleted": row.deleted_at is not None,
    }


def enqueue_change_hooks(
    uow: UnitOfWork,
    hooks: tuple[Hook, ...],
    values: dict[str, Any],
    *,
    event_id: str | None,
    version: str,
    previous_plan: str | None = None,
) -> None:
    """Queue `hooks` for the entitlement row `values` as this unit of work writes it, keyed
    `{hook}:{entitlement id}:{version}` so that a change applied twice raises its hooks once."""
    if not hooks:
        return
    row = Written.of(values)
    for hook in hooks:
        enqueue_hook(
            uow,
            hook.value,
            ordering_key=row.id,
            idempotency_key=f"{hook.value}:{row.id}:{version}",
            payload=build_payload(
                uow,
                hook.value,
                entitlement=row,
                previous_plan=previous_plan if hook is Hook.ENTITLEMENT_PLAN_CHANGED else None,
                extra=_hook_payload(row, event_id),
            ),
        )
