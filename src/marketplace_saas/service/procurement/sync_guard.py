"""The mass-deletion guard around `reconcile.sync_all` (its rule: `domain.deletion_guard`).

Before a sync changes anything, `check()` counts what it would delete: the records we hold live
that the API did not list, each confirmed gone by a GET (404). Over the limits the sync stops:
the block is recorded (`sync_blocks`, the console's banner), logged (`sync.blocked`, a warning)
and counted (`marketplace_syncs_blocked_total`; `marketplace_sync_blocked` is 1); nothing else
is written. An operator's `sync --confirm-deletions` does not check; a sync that ran its
deletions resolves the open block (`confirmed` by an operator, or `cleared`: within the limits
again). Deletion notifications never pass here: a customer who leaves is deleted at once.
The table is reached through `uow.sync_blocks` (SQL: `adapters/db/sync_blocks.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from marketplace_saas.adapters import metrics
from marketplace_saas.adapters.logging import get_logger
from marketplace_saas.adapters.procurement_errors import ProcurementError
from marketplace_saas.domain.deletion_guard import DeletionLimits, Tally, blocked_tallies
from marketplace_saas.service.audit import CallLog
from marketplace_saas.service.procurement.decision_flow import read_account, read_entitlement
from marketplace_saas.service.unit_of_work import App

if TYPE_CHECKING:
    from marketplace_saas.config import Settings

SAMPLE = 10
READ_AT_MOST = 100  # GETs per kind: enough to count small losses exactly, bounded in an incident
CONFIRM = "marketplace-saas sync --confirm-deletions"


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    message: str = ""


@dataclass(frozen=True)
class Banner:
    """The open block, as the console shows it."""

    blocked_at: datetime
    actor: str
    message: str


def limits(settings: Settings) -> DeletionLimits:
    return DeletionLimits(settings.sync_max_delete_share, settings.sync_max_delete_count)


def _describe(tallies: list[Tally], bounds: DeletionLimits, *, partial: bool) -> str:
    what = " and ".join(("at least " if partial else "") + tally.describe() for tally in tallies)
    return (
        f"the sync stopped before changing anything: it would mark deleted {what} "
        f"(limit: more than {bounds.max_share:.0%} and more than {bounds.max_count}). "
        "Check MARKETPLACE_PROVIDER_ID and the Procurement API; if these customers really "
        f"left, run {CONFIRM}"
    )


def _gone(ids: set[str], read: Callable[[str], object], enough: int) -> tuple[list[str], bool]:
    """The ids a GET confirms deleted (404), and whether it stopped at `enough` before the end."""
    gone: list[str] = []
    remaining = sorted(ids)
    while remaining:
        record_id = remaining.pop(0)
        try:
            found = read(record_id)
        except ProcurementError:
            continue  # unknown: not counted; the sync itself reports it if it gets that far
        if found is None:
            gone.append(record_id)
            if len(gone) >= enough:
                break
    return gone, bool(remaining)


def _held(live: set[str], known: set[str] | None) -> set[str]:
    return live if known is None else live & known


def check(
    container: App,
    *,
    listed_accounts: set[str],
    listed_entitlements: set[str],
    actor: str,
    known_accounts: set[str] | None = None,
    known_entitlements: set[str] | None = None,
) -> Verdict:
    """Whether the sync may go on, given what the API listed; a stop is recorded here.
    `known_*`: only these ids can be deleted (what we held before the listings began: the sync
    deletes nothing stored during them, so the guard does not count it either)."""
    with container.reading() as uow:
        live = {"accounts": uow.accounts.live_ids(), "entitlements": uow.entitlements.live_ids()}
    listed = {"accounts": listed_accounts, "entitlements": listed_entitlements}
    known = {"accounts": known_accounts, "entitlements": known_entitlements}
    missing = {kind: _held(ids, known[kind]) - listed[kind] for kind, ids in live.items()}
    bounds = limits(container.settings)
    # Only what is missing can be deleted: when even all of it is within the limits, go on.
    if not blocked_tallies([Tally(k, len(live[k]), len(missing[k])) for k in live], bounds):
        return Verdict(blocked=False)
    calls = CallLog(container.now)
    readers: dict[str, Callable[[str], object]] = {
        "accounts": lambda i: read_account(container, calls, i),
        "entitlements": lambda i: read_entitlement(container, calls, i),
    }
    gone: dict[str, list[str]] = {}
    partial = False
    for kind, reader in readers.items():
        # Past both limits the guard certainly holds: reading on would only refine the count.
        over_both = max(bounds.max_count, int(bounds.max_share * len(live[kind]))) + 1
        gone[kind], stopped = _gone(missing[kind], reader, max(over_both, READ_AT_MOST))
        partial = partial or stopped
    tallies = [Tally(kind, len(live[kind]), len(gone[kind])) for kind in live]
    over = blocked_tallies(tallies, bounds)
    with container.unit_of_work() as uow:
        calls.flush(uow, actor=actor)
        if over:
            uow.sync_blocks.record_block(
                at=container.now(),
                actor=actor,
                accounts_live=len(live["accounts"]),
                accounts_deleting=len(gone["accounts"]),
                entitlements_live=len(live["entitlements"]),
                entitlements_deleting=len(gone["entitlements"]),
                sample={"partial": partial, **{kind: ids[:SAMPLE] for kind, ids in gone.items()}},
            )
    if not over:
        return Verdict(blocked=False)
    message = _describe(over, bounds, partial=partial)
    metrics.SYNCS_BLOCKED.inc()
    metrics.SYNC_BLOCKED.set(1)
    for tally in tallies:
        metrics.SYNC_DELETIONS_HELD.labels(tally.kind).set(tally.deleting)
    get_logger(__name__, actor=actor).warning(
        "sync.blocked",
        reason="mass deletion",
        **{f"{t.kind}_live": t.live for t in tallies},
        **{f"{t.kind}_deleting": t.deleting for t in tallies},
        confirm_with=CONFIRM,
    )
    return Verdict(blocked=True, message=message)


def resolve(container: App, *, actor: str, confirmed: bool) -> None:
    """A sync ran its deletions: the open block, if any, is over (the banner goes)."""
    resolution = "confirmed" if confirmed else "cleared"
    with container.unit_of_work() as uow:
        closed = uow.sync_blocks.resolve_blocks(at=container.now(), by=actor, resolution=resolution)
    metrics.SYNC_BLOCKED.set(0)
    for kind in ("accounts", "entitlements"):
        metrics.SYNC_DELETIONS_HELD.labels(kind).set(0)
    if closed:
        get_logger(__name__, actor=actor).info("sync.unblocked", resolution=resolution)


def banner(container: App) -> Banner | None:
    """The open block for the console's banner, or None."""
    with container.reading() as uow:
        block = uow.sync_blocks.open_block()
        if block is None:
            return None
        tallies = [
            Tally("accounts", block.accounts_live, block.accounts_deleting),
            Tally("entitlements", block.entitlements_live, block.entitlements_deleting),
        ]
        bounds = limits(container.settings)
        over = blocked_tallies(tallies, bounds) or tallies
        partial = bool(block.sample.get("partial"))
        return Banner(block.blocked_at, block.actor, _describe(over, bounds, partial=partial))
