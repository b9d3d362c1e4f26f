"""Reconcile: page through every account and entitlement and repair our records to the API's truth.

`sync_all(container)` is what `marketplace-saas sync` and the `serve` scheduler run; it heals
missed notifications:

- every listed account and entitlement is applied as the lifecycle would (stale versions change
  nothing), in batches, one short transaction per batch;
- an entitlement still waiting for a decision our policies would take (approval, plan change) gets
  it, as if its notification had arrived;
- what we held before the listings began but the API no longer lists is read once more: a 404
  marks the entitlement deleted, or erases the account's personal data, exactly as the deletion
  notifications do (a record first stored during the listings waits for the next sync);
- a listed entitlement that our records hold deleted is read once more too (the listing may
  predate the deletion): only a fresh view revives it.

Before any of that, the mass-deletion guard (`service.procurement.sync_guard`) lists every id
once and counts what the sync would delete; over its limits the sync stops with nothing changed
(`SyncResult.blocked`), unless an operator confirmed (`confirm_deletions=True`). The guard counts
again on the listings the sync applied, before it deletes anything: an outage that begins
between the two listings stops the sync before its deletions (the listed records were applied).

One resource that fails (a refused decision, a transient error on its own call) is reported in
`SyncResult.errors` and the sync goes on; a failure to list stops the sync (nothing is guessed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from marketplace_saas.adapters.logging import get_logger
from marketplace_saas.adapters.procurement_errors import ProcurementError
from marketplace_saas.domain.entitlements import AccountView, EntitlementView
from marketplace_saas.domain.errors import MarketplaceError
from marketplace_saas.service.audit import CallLog
from marketplace_saas.service.procurement import records, sync_guard
from marketplace_saas.service.procurement.automatic import (
    DecisionNotTaken,
    apply_account_policy,
    apply_policies,
    needs_account_decision,
    needs_decision,
)
from marketplace_saas.service.procurement.decision_flow import read_account, read_entitlement
from marketplace_saas.service.procurement.effects import Effects, write_account, write_entitlement
from marketplace_saas.service.unit_of_work import App, UnitOfWork

BATCH = 200
T = TypeVar("T")
V = TypeVar("V", AccountView, EntitlementView)


@dataclass
class SyncResult:
    accounts_seen: int = 0
    accounts_changed: int = 0
    accounts_deleted: int = 0
    entitlements_seen: int = 0
    entitlements_changed: int = 0
    entitlements_deleted: int = 0
    decisions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    blocked: str = ""  # why the mass-deletion guard stopped this sync (nothing changed)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.blocked


def _batches(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _signed_up(container: App) -> dict[str, bool]:
    with container.reading() as uow:
        return uow.accounts.signed_up()


def _streamed(
    calls: CallLog, action: str, items: Iterator[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """A listing consumed page by page (100,000 entitlements need not sit in memory at once);
    the audit log gets one row for the whole listing, written with the last batch."""
    started = calls.start()
    count = 0
    try:
        for item in items:
            count += 1
            yield item
    except ProcurementError as exc:
        calls.record(action, started, outcome="error", details={"error": str(exc), "items": count})
        raise
    calls.record(action, started, outcome="ok", details={"items": count})


def _flush(container: App, calls: CallLog, actor: str) -> None:
    if calls.calls:
        with container.unit_of_work() as uow:
            calls.flush(uow, actor=actor)
        calls.calls.clear()


def _apply_listing(
    container: App,
    action: str,
    listing: Iterator[dict[str, Any]],
    parse: Callable[[dict[str, Any]], V],
    waits: Callable[[V], bool],
    apply: Callable[[UnitOfWork, V, records.Context], records.Applied],
    *,
    actor: str,
) -> tuple[set[str], list[V], int]:
    """Apply a listing batch by batch, one unit of work each: the ids listed, the views a
    policy would decide on now (`waits`: left to the caller, to decide then record), and how
    many of the others changed our records."""
    listed: set[str] = set()
    waiting: list[V] = []
    changed = 0
    calls = CallLog(container.now)
    for batch in _batches(_streamed(calls, action, listing)):
        ctx = records.Context(actor=actor, now=container.now())
        with container.unit_of_work() as uow:
            for resource in batch:
                view = parse(resource)
                listed.add(view.id)
                if waits(view):
                    waiting.append(view)
                    continue
                changed += int(apply(uow, view, ctx).changed)
            calls.flush(uow, actor=actor)
            calls.calls.clear()
    _flush(container, calls, actor)
    return listed, waiting, changed


def _sync_accounts(container: App, result: SyncResult, *, actor: str) -> set[str]:
    signed_up = _signed_up(container)
    provider_id = container.settings.provider_id
    listed, waiting, changed = _apply_listing(
        container,
        "list_accounts",
        container.procurement.list_accounts(),
        AccountView.from_api,
        lambda v: needs_account_decision(container, v, signed_up=signed_up.get(v.id, False)),
        lambda uow, v, ctx: records.apply_account(uow, provider_id=provider_id, view=v, ctx=ctx),
        actor=actor,
    )
    result.accounts_changed += changed
    for view in waiting:
        _decide_account(container, view, signed_up.get(view.id, False), result, actor=actor)
    result.accounts_seen = len(listed)
    return listed


def _sync_entitlements(container: App, result: SyncResult, *, actor: str) -> set[str]:
    signed_up = _signed_up(container)
    provider_id = container.settings.provider_id

    deleted: list[str] = []

    def apply(uow: UnitOfWork, view: EntitlementView, ctx: records.Context) -> records.Applied:
        row = uow.lock_entitlement(view.id)
        if row is not None and row["deleted_at"] is not None:
            # A listing is a snapshot: it may predate the deletion. Only a fresh GET revives.
            deleted.append(view.id)
            return records.UNCHANGED
        return records.apply_entitlement(
            uow, provider_id=provider_id, entitlement_id=view.id, view=view, ctx=ctx
        )

    listed, waiting, changed = _apply_listing(
        container,
        "list_entitlements",
        container.procurement.list_entitlements(),
        EntitlementView.from_api,
        lambda v: needs_decision(container, v, signed_up=signed_up.get(v.account_id, False)),
        apply,
        actor=actor,
    )
    result.entitlements_changed += changed
    for view in waiting:
        _decide(container, view, signed_up.get(view.account_id, False), result, actor=actor)
    _sync_vanished_entitlements(container, result, deleted, actor=actor)
    result.entitlements_seen = len(listed)
    return listed


def _decide_account(
    container: App, view: AccountView, signed_up: bool, result: SyncResult, *, actor: str
) -> None:
    calls = CallLog(container.now)
    try:
        effects = apply_account_policy(container, calls, view, signed_up=signed_up)
    except (ProcurementError, DecisionNotTaken) as exc:
        result.errors.append(f"account {view.id}: {exc}")
        effects = Effects(writes=[write_account(container, view)])
    ctx = records.Context(actor=actor, now=container.now())
    with container.unit_of_work() as uow:
        for write in effects.writes:
            result.accounts_changed += int(write(uow, ctx).changed)
        calls.flush(uow, actor=actor)
    result.decisions += [f"{view.id}:{decision}" for decision in effects.decisions]


def _decide(
    container: App, view: EntitlementView, signed_up: bool, result: SyncResult, *, actor: str
) -> None:
    """A decision a missed notification would have taken: take it now, then record."""
    calls = CallLog(container.now)
    try:
        latest, effects = apply_policies(container, calls, view, signed_up=signed_up)
    except (ProcurementError, MarketplaceError, DecisionNotTaken) as exc:
        result.errors.append(f"entitlement {view.id}: {exc}")
        latest, effects = view, Effects()
    effects.writes.append(write_entitlement(container, view.id, latest))
    ctx = records.Context(actor=actor, now=container.now())
    with container.unit_of_work() as uow:
        for write in effects.writes:
            result.entitlements_changed += int(write(uow, ctx).changed)
        calls.flush(uow, actor=actor)
    result.decisions += [f"{view.id}:{decision}" for decision in effects.decisions]


@dataclass(frozen=True)
class _Live:
    """Account and entitlement ids: those we hold live, or those the API listed."""

    accounts: set[str]
    entitlements: set[str]


def _sync_vanished_entitlements(
    container: App, result: SyncResult, ids: list[str], *, actor: str
) -> None:
    """Apply a fresh GET of each: a 404 marks it deleted, a view (an entitlement we had marked
    deleted and Google still has) revives it."""
    for entitlement_id in ids:
        calls = CallLog(container.now)
        try:
            view = read_entitlement(container, calls, entitlement_id)
        except ProcurementError as exc:
            result.errors.append(f"entitlement {entitlement_id}: {exc}")
            continue
        ctx = records.Context(actor=actor, now=container.now())
        with container.unit_of_work() as uow:
            applied = records.apply_entitlement(
                uow,
                provider_id=container.settings.provider_id,
                entitlement_id=entitlement_id,
                view=view,
                ctx=ctx,
            )
            calls.flush(uow, actor=actor)
        result.entitlements_deleted += int(view is None and applied.changed)
        result.entitlements_changed += int(view is not None and applied.changed)


def _sync_vanished(
    container: App,
    result: SyncResult,
    listed: _Live,
    known: _Live,
    *,
    actor: str,
) -> None:
    """What we held before the listings began and the API did not list: confirm with a GET
    before believing it gone. A record first stored during the listings (a purchase meanwhile)
    is not expected in them: the next sync sees it listed. Read once its listing is past, a 404
    would be believed from a GET alone, during an incident too."""
    with container.reading() as uow:
        live_entitlements = (uow.entitlements.live_ids() & known.entitlements) - listed.entitlements
        live_accounts = (uow.accounts.live_ids() & known.accounts) - listed.accounts
    _sync_vanished_entitlements(container, result, sorted(live_entitlements), actor=actor)
    for account_id in sorted(live_accounts):
        calls = CallLog(container.now)
        try:
            account = read_account(container, calls, account_id)
        except ProcurementError as exc:
            result.errors.append(f"account {account_id}: {exc}")
            continue
        ctx = records.Context(actor=actor, now=container.now())
        with container.unit_of_work() as uow:
            if account is None:
                applied = records.erase_account(uow, account_id=account_id, ctx=ctx)
                result.accounts_deleted += int(applied.changed)
            else:
                records.apply_account(
                    uow, provider_id=container.settings.provider_id, view=account, ctx=ctx
                )
            calls.flush(uow, actor=actor)


def _guard(container: App, *, actor: str) -> sync_guard.Verdict:
    """The guard's first pass: the ids the API lists now (a listing of ids, nothing applied)."""
    calls = CallLog(container.now)
    accounts = _streamed(calls, "list_accounts", container.procurement.list_accounts())
    entitlements = _streamed(calls, "list_entitlements", container.procurement.list_entitlements())
    listed_accounts = {AccountView.from_api(resource).id for resource in accounts}
    listed_entitlements = {EntitlementView.from_api(resource).id for resource in entitlements}
    _flush(container, calls, actor)
    return sync_guard.check(
        container,
        listed_accounts=listed_accounts,
        listed_entitlements=listed_entitlements,
        actor=actor,
    )


def sync_all(container: App, *, actor: str = "sync", confirm_deletions: bool = False) -> SyncResult:
    """Repair every account and entitlement from the Procurement API; see the module docstring."""
    log = get_logger(__name__, actor=actor)
    result = SyncResult()
    if not confirm_deletions:
        result.blocked = _guard(container, actor=actor).message
        if result.blocked:
            return result
    with container.reading() as uow:  # what we hold before the listings begin
        known = _Live(uow.accounts.live_ids(), uow.entitlements.live_ids())
    listed_accounts = _sync_accounts(container, result, actor=actor)
    listed_entitlements = _sync_entitlements(container, result, actor=actor)
    if not confirm_deletions:
        # Once more on the listings just applied: Google may have lost the data since the
        # guard's own listing (an outage that began meanwhile); nothing is deleted then.
        result.blocked = sync_guard.check(
            container,
            listed_accounts=listed_accounts,
            listed_entitlements=listed_entitlements,
            actor=actor,
            known_accounts=known.accounts,
            known_entitlements=known.entitlements,
        ).message
        if result.blocked:
            return result
    listed = _Live(listed_accounts, listed_entitlements)
    _sync_vanished(container, result, listed, known, actor=actor)
    sync_guard.resolve(container, actor=actor, confirmed=confirm_deletions)
    log.info(
        "sync.done",
        accounts=result.accounts_seen,
        entitlements=result.entitlements_seen,
        accounts_changed=result.accounts_changed,
        entitlements_changed=result.entitlements_changed,
        entitlements_deleted=result.entitlements_deleted,
        accounts_deleted=result.accounts_deleted,
        decisions=len(result.decisions),
        errors=len(result.errors),
    )
    return result
