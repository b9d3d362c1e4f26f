"""The lifecycle's reads from the Procurement API and the writes that record what it says.

A read goes through the unit of work's `CallLog` (audited); a write is a function run later in
the one short transaction `service.notifications` opens for a notification's effects.
"""

from __future__ import annotations

from collections.abc import Callable

from marketplace_saas.domain.entitlements import AccountView, EntitlementView
from marketplace_saas.service import records
from marketplace_saas.service.audit import CallLog
from marketplace_saas.service.unit_of_work import App as Container
from marketplace_saas.service.unit_of_work import UnitOfWork

Write = Callable[[UnitOfWork, records.Context], records.Applied]


def read_entitlement(container: Container, calls: CallLog, eid: str) -> EntitlementView | None:
    resource = calls.call(
        "get_entitlement", container.procurement.get_entitlement, eid, entitlement_id=eid
    )
    return EntitlementView.from_api(resource) if resource is not None else None


def read_account(container: Container, calls: CallLog, account_id: str) -> AccountView | None:
    resource = calls.call(
        "get_account", container.procurement.get_account, account_id, account_id=account_id
    )
    return AccountView.from_api(resource) if resource is not None else None


def write_entitlement(container: Container, eid: str, view: EntitlementView | None) -> Write:
    def write(uow: UnitOfWork, ctx: records.Context) -> records.Applied:
        return records.apply_entitlement(
            uow,
            provider_id=container.settings.provider_id,
            entitlement_id=eid,
            view=view,
            ctx=ctx,
        )

    return write


def write_account(container: Container, view: AccountView) -> Write:
    def write(uow: UnitOfWork, ctx: records.Context) -> records.Applied:
        return records.apply_account(
            uow, provider_id=container.settings.provider_id, view=view, ctx=ctx
        )

    return write


def erase_account(account_id: str) -> Write:
    def write(uow: UnitOfWork, ctx: records.Context) -> records.Applied:
        return records.erase_account(uow, account_id=account_id, ctx=ctx)

    return write
