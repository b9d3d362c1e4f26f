"""One handler per event type, in one table (`EVENT_HANDLERS`).

A notification is a hint. Every handler re-reads its account or entitlement from the Procurement
API, takes the decisions the policies allow on the state it finds (approve the account, the
entitlement, a plan change), reads again after deciding, and returns the `Effects` to write: the
caller (`inbox`) commits them in one short transaction with the inbox row, so no
transaction is open while Google is called. A notification older than what we applied
(`updateTime`) changes nothing and calls nobody.

Decisions follow the state, not the event type: an entitlement found waiting for approval is
handled whichever message brought us to it, so lost or reordered messages still end right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from marketplace_saas.domain.entitlements import is_stale
from marketplace_saas.domain.events import EventType
from marketplace_saas.domain.notifications import Notification
from marketplace_saas.domain.records import KnownEntitlement
from marketplace_saas.service.audit import CallLog
from marketplace_saas.service.procurement.automatic import apply_account_policy, apply_policies
from marketplace_saas.service.procurement.decision_flow import read_account, read_entitlement
from marketplace_saas.service.procurement.effects import (
    Effects,
    erase_account,
    write_account,
    write_entitlement,
)
from marketplace_saas.service.unit_of_work import App


@dataclass(frozen=True)
class Stored:
    """What our records said of an entitlement when its notification was stored: read in that
    transaction, so the handler need not read it again before calling Google."""

    entitlement: KnownEntitlement | None


class Handler(Protocol):
    def __call__(
        self,
        container: App,
        note: Notification,
        calls: CallLog,
        stored: Stored | None = None,
    ) -> Effects: ...


# -- reading what we know ------------------------------------------------------------------


@dataclass(frozen=True)
class _Known:
    """What our records say before we call Google (read in a short session, then closed)."""

    applied: datetime | None  # the updateTime we applied
    account_known: bool
    signed_up: bool


def _known_entitlement(container: App, eid: str) -> KnownEntitlement | None:
    """The updateTime of the version we applied, and what we know of its account."""
    with container.reading() as uow:
        return uow.entitlements.known(eid)


def _known_account(container: App, account_id: str) -> _Known:
    with container.reading() as uow:
        row = uow.accounts.get(account_id)
        if row is None:
            return _Known(None, False, False)
        return _Known(row.google_update_time, True, row.signed_up_at is not None)


# -- entitlement handlers -----------------------------------------------------------------------


# A 404 met by a notification that is not a deletion deletes nothing: during a Google incident
# (every read answering 404) such notifications would otherwise mark entitlements deleted and
# erase accounts one by one, past the mass-deletion guard. Deletions come from ENTITLEMENT_DELETED
# and ACCOUNT_DELETED, and from the sync, which confirms with a GET and is guarded.
LEFT_TO_SYNC = "the API answers 404: not a deletion notification, left to the (guarded) sync"


def _refresh_entitlement(
    container: App,
    note: Notification,
    calls: CallLog,
    stored: Stored | None = None,
    *,
    deletion: bool = False,
) -> Effects:
    """GET the entitlement, take the decisions its state and our policies call for, record it."""
    eid = note.subject_id
    ours = stored.entitlement if stored is not None else _known_entitlement(container, eid)
    if is_stale(ours.update_time if ours else None, note.update_time):
        return Effects(detail="stale: a newer version is already applied")
    view = read_entitlement(container, calls, eid)
    if view is None:
        if not deletion:
            return Effects(detail=LEFT_TO_SYNC)
        return Effects(
            detail="deleted: the API answers 404",
            writes=[write_entitlement(container, eid, None)],
        )
    if ours is not None and ours.account_id == view.account_id:  # read with the entitlement
        signed_up = ours.account_signed_up
        known = _Known(ours.account_update_time, signed_up is not None, bool(signed_up))
    else:
        known = _known_account(container, view.account_id)
    latest, effects = apply_policies(container, calls, view, signed_up=known.signed_up)
    if not effects.decisions and not known.account_known:
        # An entitlement of an account we have not seen: record the account too.
        account = read_account(container, calls, view.account_id)
        if account is not None:
            effects.writes.append(write_account(container, account))
    effects.writes.append(write_entitlement(container, eid, latest))
    effects.detail = latest.state
    return effects


def on_creation_requested(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """The customer chose a plan: approve per APPROVAL_POLICY, or record it and wait."""
    return _refresh_entitlement(container, note, calls, stored)


def on_offer_accepted(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """A private offer was accepted on an auto-approval product: record the upcoming start."""
    return _refresh_entitlement(container, note, calls, stored)


def on_active(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """The plan is active: turn our service on at the plan from GET."""
    return _refresh_entitlement(container, note, calls, stored)


def on_plan_change_requested(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """A new plan awaits approval: approve per PLAN_CHANGE_POLICY; the service does not change."""
    return _refresh_entitlement(container, note, calls, stored)


def on_plan_changed(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """The plan change took effect: move our service to the plan from GET."""
    return _refresh_entitlement(container, note, calls, stored)


def on_plan_change_cancelled(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """The pending plan change was withdrawn or rejected: the old plan carries on."""
    return _refresh_entitlement(container, note, calls, stored)


def on_pending_cancellation(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """Cancelled at the end of the term: keep serving until CANCELLED."""
    return _refresh_entitlement(container, note, calls, stored)


def on_cancellation_reverted(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """The customer took the cancellation back: it renews again."""
    return _refresh_entitlement(container, note, calls, stored)


def on_cancelling(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """Cancellation in progress: record the state, wait for CANCELLED."""
    return _refresh_entitlement(container, note, calls, stored)


def on_cancelled(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """Cancelled: turn our service off (the last usage window ends here)."""
    return _refresh_entitlement(container, note, calls, stored)


def on_renewed(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """A new term started: refresh the offer's end time."""
    return _refresh_entitlement(container, note, calls, stored)


def on_offer_ended(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """A private offer ended: either CANCELLED follows, or it carries on at list price."""
    return _refresh_entitlement(container, note, calls, stored)


def on_entitlement_deleted(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """Google deleted the entitlement (GET answers 404): mark it deleted, keep it for billing."""
    return _refresh_entitlement(container, note, calls, stored, deletion=True)


# -- account handlers -------------------------------------------------------------------------


def on_account_active(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """An account exists (messages without eventType land here): record it, approve per policy."""
    account_id = note.subject_id
    known = _known_account(container, account_id)
    if is_stale(known.applied, note.update_time):
        return Effects(detail="stale: a newer version is already applied")
    view = read_account(container, calls, account_id)
    if view is None:
        return Effects(detail=LEFT_TO_SYNC)
    return apply_account_policy(container, calls, view, signed_up=known.signed_up)


def on_account_deleted(
    container: App, note: Notification, calls: CallLog, stored: Stored | None = None
) -> Effects:
    """The account is gone: erase the customer's personal data, keep what billing needs."""
    view = read_account(container, calls, note.subject_id)
    if view is not None:  # still there: the message was a hint about something else
        return Effects(detail="account still exists", writes=[write_account(container, view)])
    return Effects(detail="deleted: personal data erased", writes=[erase_account(note.subject_id)])


EVENT_HANDLERS: dict[EventType, Handler] = {
    EventType.ACCOUNT_CREATION_REQUESTED: on_account_active,  # deprecated by Google
    EventType.ACCOUNT_ACTIVE: on_account_active,
    EventType.ACCOUNT_DELETED: on_account_deleted,
    EventType.ENTITLEMENT_CREATION_REQUESTED: on_creation_requested,
    EventType.ENTITLEMENT_OFFER_ACCEPTED: on_offer_accepted,
    EventType.ENTITLEMENT_ACTIVE: on_active,
    EventType.ENTITLEMENT_PLAN_CHANGE_REQUESTED: on_plan_change_requested,
    EventType.ENTITLEMENT_PLAN_CHANGED: on_plan_changed,
    EventType.ENTITLEMENT_PLAN_CHANGE_CANCELLED: on_plan_change_cancelled,
    EventType.ENTITLEMENT_PENDING_CANCELLATION: on_pending_cancellation,
    EventType.ENTITLEMENT_CANCELLATION_REVERTED: on_cancellation_reverted,
    EventType.ENTITLEMENT_CANCELLING: on_cancelling,
    EventType.ENTITLEMENT_CANCELLED: on_cancelled,
    EventType.ENTITLEMENT_RENEWED: on_renewed,
    EventType.ENTITLEMENT_OFFER_ENDED: on_offer_ended,
    EventType.ENTITLEMENT_DELETED: on_entitlement_deleted,
}


def handler_for(note: Notification) -> tuple[Handler | None, str]:
    """The handler for a notification, or None and why it is ignored."""
    if note.event_type is None:
        if note.kind == "account":
            return on_account_active, ""
        return None, "entitlement message without eventType"
    try:
        event_type = EventType(note.event_type)
    except ValueError:
        return None, f"unknown eventType {note.event_type}"
    if not event_type.value.startswith(note.kind.upper()):
        return None, f"{event_type.value} carries an '{note.kind}' object"
    return EVENT_HANDLERS[event_type], ""
