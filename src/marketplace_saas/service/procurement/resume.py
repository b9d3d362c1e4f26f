"""Resume what Pub/Sub stopped delivering: the `inbox` job's one call.

    resume_unsettled(container) -> Resumed

A message stored more than `INBOX_RESUME_AFTER_SECONDS` ago and still `received` or `retrying`
is one Pub/Sub has stopped delivering (a dead-letter policy with fewer attempts than ours, a lost
lease, an expired retention). It is processed again from its stored payload through the inbox's
`_settle`, as a delivery would be, and left `retrying` if it fails again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from marketplace_saas.adapters import metrics
from marketplace_saas.adapters.logging import get_logger
from marketplace_saas.domain.notifications import InvalidNotification, parse_notification
from marketplace_saas.service.procurement.inbox import SETTLED, _logger, _settle, _stored
from marketplace_saas.service.unit_of_work import App

RESUME = "inbox-resume"  # the actor of what `resume_unsettled` does
RESUME_BATCH = 100  # at most this many messages per run (the oldest first)


@dataclass
class Resumed:
    """What one `resume_unsettled` run did: the status each resumed message reached."""

    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return sum(self.statuses.values())


def resume_unsettled(container: App, *, limit: int = RESUME_BATCH) -> Resumed:
    """Process again each message stored more than INBOX_RESUME_AFTER_SECONDS ago and still
    `received` or `retrying`: Pub/Sub has stopped delivering it. Each one goes through `_settle`,
    as a delivery would (its entitlement's lock, its attempts counted); one that fails again stays
    `retrying` for the next run, or is parked once it has used its attempts. A redelivery that
    arrives meanwhile is harmless: whichever settles second finds the work done."""
    age = timedelta(seconds=container.settings.inbox_resume_after_seconds)
    with container.reading() as uow:
        event_ids = uow.inbox.unsettled(received_before=container.now() - age, limit=limit)
    resumed = Resumed()
    for event_id in event_ids:
        stored = _stored(container, event_id)
        if stored is None or stored.status in SETTLED:
            continue  # settled by a delivery since the query
        try:
            note = parse_notification(stored.payload, provider_id=container.settings.provider_id)
        except InvalidNotification as error:  # stored as valid: the provider id has changed
            _settle_invalid(container, event_id, error.reason)
            resumed.statuses["invalid"] += 1
            continue
        log = _logger(note, source=RESUME)
        # `deliveries` tells the two stories apart: 1, Pub/Sub never delivered it again; more,
        # it did, and no delivery was carried through (each replica that had it died first).
        log.warning(
            "notification.resumed",
            was=stored.status,
            after_seconds=age.total_seconds(),
            attempts=stored.attempts,
            deliveries=stored.deliveries,
        )
        status = _settle(container, note, actor=RESUME, log=log)
        resumed.statuses[status] += 1
        metrics.NOTIFICATIONS_RESUMED.labels(status).inc()
    return resumed


def _settle_invalid(container: App, event_id: str, reason: str) -> None:
    """A stored message that no longer parses (MARKETPLACE_PROVIDER_ID changed since): `invalid`,
    with the reason, so that the inbox job does not take it again every run."""
    get_logger(__name__, event_id=event_id).warning("notification.resume_invalid", reason=reason)
    with container.unit_of_work() as uow:
        row = uow.lock_inbox(event_id)
        if row is not None and row.status not in SETTLED:
            row.status = "invalid"
            row.last_error = reason
            row.processed_at = container.now()
