"""Handle one procurement notification: store it, process it, decide ack or nack, here only.

    handle_message(container, data, message_id=..., source="pull"|"push") -> Disposition
    replay(container, event_id) -> ReplayResult

1. Parse. A message that can never become valid (not JSON, no ids, another provider's, over
   64 KiB) gets an inbox row with status `invalid` and the reason, a warning, and an ACK.
2. Store the raw message first, in its own committed transaction (unique eventId), which also
   reads what we applied of its entitlement for the handler. A repeated delivery counts
   `deliveries`; if the first one is already settled (processed, ignored, parked) it is
   acknowledged without being processed again.
3. Process: the handler of `handlers.EVENT_HANDLERS` calls Google, then its writes, the audit rows
   of its calls and the inbox status commit in one short transaction. Unknown event types are
   recorded as `ignored`. Both transactions go through `container.writes`: on SQLite, those of
   concurrent workers share one commit (`adapters.db.group_commit`).
4. Decide, in `_settle` alone: done -> ACK; a transient failure (Procurement API unavailable,
   database busy or unreachable) or a bug (any other exception, recorded with its traceback) ->
   the attempt is counted and the message is NACKed for Pub/Sub to redeliver, until
   `MAX_DELIVERY_ATTEMPTS`: then it is `parked` (ACK), visible and replayable.
5. Resume: a message still `received` or `retrying` long after it arrived is one Pub/Sub has
   stopped delivering; `resume.resume_unsettled` processes it again through `_settle`.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from enum import Enum
from typing import Any

from marketplace_saas.adapters.db.errors import IntegrityError, OperationalError
from marketplace_saas.adapters.logging import get_logger
from marketplace_saas.adapters.procurement_errors import TransientProcurementError
from marketplace_saas.domain.notifications import (
    MAX_NOTIFICATION_BYTES,
    InvalidNotification,
    Notification,
    digest_event_id,
    parse_notification,
)
from marketplace_saas.service.audit import CallLog
from marketplace_saas.service.procurement import handlers, records
from marketplace_saas.service.procurement.automatic import DecisionNotTaken
from marketplace_saas.service.procurement.effects import Effects
from marketplace_saas.service.unit_of_work import App, UnitOfWork

LISTENER = "listener"

# Inbox statuses after which a redelivery is acknowledged without processing again.
SETTLED = frozenset({"processed", "ignored", "invalid", "parked"})

# Failures worth another attempt later: the API or the database will be back.
TRANSIENT: tuple[type[BaseException], ...] = (
    TransientProcurementError,
    OperationalError,  # database unreachable, locked, serialization failure
    IntegrityError,  # a concurrent worker inserted the same row first: the retry sees it
    DecisionNotTaken,  # a decision Google has not confirmed yet (still waiting, or 404 after it)
)


class Disposition(Enum):
    ACK = "ack"
    NACK = "nack"


@dataclass(frozen=True)
class ReplayResult:
    event_id: str
    status: str
    error: str | None = None


def _text(data: bytes) -> str:
    """The payload as storable text: invalid UTF-8 and NUL become U+FFFD."""
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


# -- storing --------------------------------------------------------------------------------------


def _store_invalid(
    container: App,
    data: bytes,
    error: InvalidNotification,
    *,
    message_id: str | None,
    source: str,
) -> str:
    """Store a message that can never become valid, keyed by a digest of its bytes (or count one
    more delivery of it); that key."""
    key = digest_event_id(data)
    claimed = f" (claimed eventId {error.event_id!r})" if error.event_id else ""
    now = container.now()
    values = {
        "event_id": key,
        "event_type": error.event_type,
        "provider_id": error.provider_id,
        "subject_kind": error.kind,
        "subject_id": error.subject_id,
        "payload": _text(data[:MAX_NOTIFICATION_BYTES]),
        "message_id": message_id,
        "source": source,
        "status": "invalid",
        "attempts": 0,
        "deliveries": 1,
        "received_at": now,
        "processed_at": now,
        "last_error": error.reason + claimed,
    }
    with container.unit_of_work() as uow:
        if not uow.inbox.add(values):
            uow.inbox.count_delivery(key)
    return key


def _store_received(
    container: App,
    note: Notification,
    data: bytes,
    *,
    message_id: str | None,
    source: str,
) -> tuple[str, int, bool, handlers.Stored | None]:
    """Store the message unless its eventId is there: its status, deliveries, whether it is
    a repeated delivery, and (an entitlement's message) what our records say of the entitlement,
    read in the same transaction for the handler. Committed before the message is processed
    (with other workers' writes, on SQLite: `container.writes`)."""
    values = {
        "event_id": note.event_id,
        "event_type": note.event_type,
        "provider_id": note.provider_id,
        "subject_kind": note.kind,
        "subject_id": note.subject_id,
        "subject_update_time": note.update_time,
        "payload": _text(data),
        "message_id": message_id,
        "source": source,
        "status": "received",
        "attempts": 0,
        "deliveries": 1,
        "received_at": container.now(),
    }

    def store(uow: UnitOfWork) -> tuple[str, int, bool, handlers.Stored | None]:
        stored = None
        if note.kind == "entitlement":
            stored = handlers.Stored(uow.entitlements.known(note.subject_id))
        if uow.inbox.add(values):
            return "received", 1, False, stored
        counted = uow.inbox.count_delivery(note.event_id)
        if counted is None:  # pragma: no cover - deleted between the two statements
            raise IntegrityError("inbox row vanished", None, Exception(note.event_id))
        return counted[0], counted[1], True, stored

    return container.writes.run(store)


# -- processing and settling ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Done:
    status: str
    detail: str
    decisions: tuple[str, ...]
    changed: bool


def _process(
    container: App,
    note: Notification,
    calls: CallLog,
    *,
    actor: str,
    stored: handlers.Stored | None = None,
) -> _Done:
    """Run the handler, then commit its writes, its calls and the inbox status together."""
    handler, why_ignored = handlers.handler_for(note)
    effects = (
        handler(container, note, calls, stored)
        if handler is not None
        else Effects(status="ignored", detail=why_ignored)
    )
    ctx = records.Context(
        actor=actor,
        now=container.now(),
        event_id=note.event_id,
        event_type=note.event_type,
        event_update_time=note.update_time,
    )

    def commit(uow: UnitOfWork) -> bool:
        changed = False
        for write in effects.writes:
            changed = write(uow, ctx).changed or changed
        calls.flush(uow, actor=actor, event_id=note.event_id)
        uow.inbox.settle(
            note.event_id,
            status=effects.status,
            processed_at=ctx.now,
            last_error=None if effects.status == "processed" else effects.detail,
        )
        return changed

    changed = container.writes.run(commit)
    return _Done(effects.status, effects.detail, tuple(effects.decisions), changed)


def _record_failure(
    container: App,
    note: Notification,
    calls: CallLog,
    exc: BaseException,
    *,
    transient: bool,
    actor: str,
) -> tuple[str, int]:
    """Count the failed attempt; park the message once it has used all its attempts."""
    limit = container.settings.max_delivery_attempts
    with container.unit_of_work() as uow:
        calls.flush(uow, actor=actor, event_id=note.event_id)
        row = uow.lock_inbox(note.event_id)
        if row is None:  # pragma: no cover - stored before processing; kept for safety
            return "retrying", 1
        row.attempts += 1
        if row.status in SETTLED:
            # Another worker settled it meanwhile (a redelivery handled by a second listener) and
            # Pub/Sub has its ack: this attempt's failure changes nothing, and the answer is ACK.
            return row.status, row.attempts
        row.status = "parked" if row.attempts >= limit else "retrying"
        row.last_error = f"{'transient' if transient else 'error'}: {type(exc).__name__}: {exc}"
        row.traceback = None if transient else "".join(traceback.format_exception(exc))
        if row.status == "parked":
            row.processed_at = container.now()
        return row.status, row.attempts


def _settle(
    container: App,
    note: Notification,
    *,
    actor: str,
    log: Any,
    stored: handlers.Stored | None = None,
) -> str:
    """The one place that turns an outcome into an inbox status (and so into ack or nack)."""
    calls = CallLog(container.now)
    try:
        done = _process(container, note, calls, actor=actor, stored=stored)
    except TRANSIENT as exc:
        status, attempts = _record_failure(container, note, calls, exc, transient=True, actor=actor)
        log.warning("notification.retry", status=status, attempts=attempts, error=str(exc))
        return status
    except Exception as exc:
        status, attempts = _record_failure(
            container, note, calls, exc, transient=False, actor=actor
        )
        log.exception("notification.failed", status=status, attempts=attempts)
        return status
    log.info(
        "notification." + done.status,
        detail=done.detail,
        decisions=list(done.decisions),
        changed=done.changed,
    )
    return done.status


def _logger(note: Notification, **extra: Any) -> Any:
    subject = "account_id" if note.kind == "account" else "entitlement_id"
    return get_logger(
        __name__,
        event_id=note.event_id,
        event_type=note.event_type,
        **{subject: note.subject_id},
        **extra,
    )


def handle_message(
    container: App, data: bytes, *, message_id: str | None = None, source: str = "pull"
) -> Disposition:
    """Store, process and settle one notification; ACK only once its effects are committed."""
    try:
        note = parse_notification(data, provider_id=container.settings.provider_id)
    except InvalidNotification as error:
        key = _store_invalid(container, data, error, message_id=message_id, source=source)
        get_logger(__name__, message_id=message_id, source=source).warning(
            "notification.invalid", reason=error.reason, inbox_event_id=key
        )
        return Disposition.ACK
    log = _logger(note, message_id=message_id, source=source)
    try:
        received = _store_received(container, note, data, message_id=message_id, source=source)
    except IntegrityError:  # the same eventId, stored a moment ago by another worker
        received = _store_received(container, note, data, message_id=message_id, source=source)
    status, deliveries, repeated, stored = received
    if repeated and status in SETTLED:
        log.info("notification.duplicate", status=status, deliveries=deliveries)
        return Disposition.ACK
    status = _settle(container, note, actor=LISTENER, log=log, stored=stored)
    return Disposition.NACK if status == "retrying" else Disposition.ACK


@dataclass(frozen=True)
class _Stored:
    status: str
    payload: bytes
    attempts: int
    deliveries: int


def _stored(container: App, event_id: str) -> _Stored | None:
    """A stored message as it is now (None: no such eventId)."""
    with container.reading() as uow:
        row = uow.inbox.get(event_id)
        if row is None:
            return None
        return _Stored(row.status, row.payload.encode("utf-8"), row.attempts, row.deliveries)


def replay(container: App, event_id: str) -> ReplayResult:
    """Process a stored notification again (a parked one, or any other), now."""
    stored = _stored(container, event_id)
    if stored is None:
        raise LookupError(f"no notification with eventId {event_id!r} in the inbox")
    try:
        note = parse_notification(stored.payload, provider_id=container.settings.provider_id)
    except InvalidNotification as error:
        return ReplayResult(event_id, "invalid", error.reason)
    log = _logger(note, source="replay")
    status = _settle(container, note, actor="replay", log=log)
    if status == "retrying":
        status = _park_after_replay(container, event_id)
    with container.reading() as uow:
        row = uow.inbox.get(event_id)
        last_error = row.last_error if row is not None and status != "processed" else None
    return ReplayResult(event_id, status, last_error)


def _park_after_replay(container: App, event_id: str) -> str:
    """A replay has no Pub/Sub delivery to retry it: a failed replay stays parked."""
    with container.unit_of_work() as uow:
        row = uow.lock_inbox(event_id)
        if row is not None:
            row.status = "parked"
            row.processed_at = container.now()
    return "parked"
