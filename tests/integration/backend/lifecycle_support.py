"""Feeding the emulator's notifications to `handle_message`, as the listener would."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import AuditLog, Entitlement, HookOutbox, InboxMessage
from marketplace_saas.bootstrap import Container
from marketplace_saas.service.procurement.inbox import Disposition, handle_message
from tests.integration.backend.conftest import PROVIDER


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


@dataclass
class Feed:
    """Delivers each notification the emulator published since the last call, once."""

    emulator: Emulator
    container: Container
    seen: int = 0
    dispositions: list[tuple[str, Disposition]] = field(default_factory=list)

    def pending(self) -> list[dict[str, Any]]:
        published = self.emulator.notifications(PROVIDER)
        new, self.seen = published[self.seen :], len(published)
        return new

    def deliver(self, *, retries: int = 20) -> list[dict[str, Any]]:
        """Deliver until quiet (our approvals cause new notifications); NACKed ones again."""
        delivered: list[dict[str, Any]] = []
        queue = self.pending()
        for _ in range(retries):
            if not queue:
                break
            nacked = []
            for payload in queue:
                disposition = handle_message(self.container, encode(payload))
                self.dispositions.append((payload.get("eventType", "?"), disposition))
                delivered.append(payload)
                if disposition is Disposition.NACK:
                    nacked.append(payload)
            queue = nacked + self.pending()
        assert not queue, f"still undelivered after {retries} rounds: {queue}"
        return delivered


def entitlement_row(container: Container, entitlement_id: str) -> Entitlement:
    with container.sessions() as session:
        row = session.get(Entitlement, entitlement_id)
        assert row is not None, f"no entitlement {entitlement_id} in our records"
        return row


def hooks(container: Container, ordering_key: str | None = None) -> list[str]:
    statement = sa.select(HookOutbox.hook).order_by(HookOutbox.id)
    if ordering_key is not None:
        statement = statement.where(HookOutbox.ordering_key == ordering_key)
    with container.sessions() as session:
        return list(session.scalars(statement))


def inbox(container: Container, event_id: str) -> InboxMessage:
    with container.sessions() as session:
        row = session.scalar(sa.select(InboxMessage).where(InboxMessage.event_id == event_id))
        assert row is not None, f"no inbox row for {event_id}"
        return row


def api_calls(container: Container, action: str | None = None) -> int:
    statement = sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.kind == "api_call")
    if action is not None:
        statement = statement.where(AuditLog.action == action)
    with container.sessions() as session:
        return int(session.scalar(statement) or 0)
