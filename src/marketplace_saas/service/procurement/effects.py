"""What a lifecycle handler hands back: the writes that record what it found, run later.

A handler calls Google with no unit of work open; its `Effects` list `Write`s, functions run in
the one short unit of work `inbox` (or `reconcile`) opens for them, with the inbox row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from marketplace_saas.domain.entitlements import AccountView, EntitlementView
from marketplace_saas.service.procurement import records
from marketplace_saas.service.unit_of_work import App, UnitOfWork

Write = Callable[[UnitOfWork, records.Context], records.Applied]


@dataclass
class Effects:
    """What a handler found, and the writes that record it (run in one unit of work)."""

    status: str = "processed"  # processed | ignored
    detail: str = ""
    writes: list[Write] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)


def write_entitlement(container: App, eid: str, view: EntitlementView | None) -> Write:
    def write(uow: UnitOfWork, ctx: records.Context) -> records.Applied:
        return records.apply_entitlement(
            uow,
            provider_id=container.settings.provider_id,
            entitlement_id=eid,
            view=view,
            ctx=ctx,
        )

    return write


def write_account(container: App, view: AccountView) -> Write:
    def write(uow: UnitOfWork, ctx: records.Context) -> records.Applied:
        return records.apply_account(
            uow, provider_id=container.settings.provider_id, view=view, ctx=ctx
        )

    return write


def erase_account(account_id: str) -> Write:
    def write(uow: UnitOfWork, ctx: records.Context) -> records.Applied:
        return records.erase_account(uow, account_id=account_id, ctx=ctx)

    return write
