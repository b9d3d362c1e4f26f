"""The Procurement backend's state, its lock, its notifications and its clock-driven transitions.

`BackendCore` owns the accounts and entitlements of every provider. Each public operation runs in
`_write()` or `_read()`: both take the lock and first apply every transition that fell due (offer
starts and activation delays, term ends, pending plan changes and cancellations) in time order,
stamped with the time it was due, so moving the clock is deterministic. Notifications are queued
under the lock and published after it is released, in the order they happened.
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from marketplace_emulator.catalog import Catalog, Product
from marketplace_emulator.clock import Clock, rfc3339
from marketplace_emulator.events import EventSink
from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.exceptions import (
    AccountNotFound,
    EntitlementNotFound,
    WrongState,
)

Key = tuple[str, str]
REASON_MAX_BYTES = 256


def truncate_reason(reason: str) -> str:
    """Reasons longer than 256 bytes are truncated (on a UTF-8 character boundary)."""
    data = reason.encode("utf-8")
    if len(data) <= REASON_MAX_BYTES:
        return reason
    return data[:REASON_MAX_BYTES].decode("utf-8", errors="ignore")


def snapshot(entitlement: r.Entitlement) -> r.Entitlement:
    """A copy that later transitions do not change (safe to read outside the lock)."""
    clone = copy.copy(entitlement)
    clone.periods = list(entitlement.periods)  # PlanPeriod and datetime are immutable
    clone.offer_history = list(entitlement.offer_history)
    return clone


class BackendCore:
    def __init__(
        self,
        clock: Clock,
        catalog: Catalog,
        sink: EventSink,
        activation_delay_seconds: float = 0.0,
    ) -> None:
        self.clock = clock
        self.catalog = catalog
        self.sink = sink
        self.activation_delay = timedelta(seconds=max(0.0, activation_delay_seconds))
        self._lock = threading.RLock()
        self._publish_lock = threading.Lock()
        self._accounts: dict[Key, r.Account] = {}
        self._entitlements: dict[Key, r.Entitlement] = {}
        self._deleted: dict[Key, r.Entitlement] = {}
        self._outbox: list[tuple[str, dict[str, Any]]] = []
        self._next_due: datetime | None = None
        self._project_numbers = itertools.count(100_000_000_001)

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[datetime]:
        with self._lock:
            now = self.clock.now()
            self._process_due(now)
        self._flush()
        with self._lock:
            yield now

    @contextmanager
    def _write(self) -> Iterator[datetime]:
        try:
            with self._lock:
                now = self.clock.now()
                self._process_due(now)
                try:
                    yield now
                finally:
                    self._next_due = self._compute_next_due()
        finally:
            self._flush()

    def _flush(self) -> None:
        with self._publish_lock:
            with self._lock:
                batch, self._outbox = self._outbox, []
            for provider_id, payload in batch:
                self.sink.publish(provider_id, payload)

    def process_due(self) -> None:
        """Apply every transition due at the clock's current time (after `clock.advance`)."""
        with self._write():
            pass

    def reset(self) -> None:
        with self._lock:
            self._accounts.clear()
            self._entitlements.clear()
            self._deleted.clear()
            self._outbox.clear()
            self._next_due = None
            self._project_numbers = itertools.count(100_000_000_001)

    # -- lookups ------------------------------------------------------------------------------

    def _account(self, provider_id: str, account_id: str) -> r.Account:
        account = self._accounts.get((provider_id, account_id))
        if account is None:
            raise AccountNotFound(provider_id, account_id)
        return account

    def _entitlement(self, provider_id: str, entitlement_id: str) -> r.Entitlement:
        entitlement = self._entitlements.get((provider_id, entitlement_id))
        if entitlement is None:
            raise EntitlementNotFound(provider_id, entitlement_id)
        return entitlement

    def _product(self, entitlement: r.Entitlement) -> Product | None:
        return self.catalog.get(entitlement.provider, entitlement.product)

    @staticmethod
    def _require(entitlement: r.Entitlement, action: str, *states: str) -> None:
        if entitlement.state not in states:
            raise WrongState(entitlement.name, entitlement.state, action, states)

    # -- notifications ------------------------------------------------------------------------

    def _emit_account(self, event_type: str, account: r.Account, when: datetime) -> None:
        body = {"id": account.id, "updateTime": rfc3339(when)}
        self._queue(account.provider, event_type, "account", body)

    def _emit(self, event_type: str, entitlement: r.Entitlement, **extra: str) -> None:
        body = {"id": entitlement.id, "updateTime": rfc3339(entitlement.update_time), **extra}
        self._queue(entitlement.provider, event_type, "entitlement", body)

    def _queue(self, provider_id: str, event_type: str, kind: str, body: dict[str, str]) -> None:
        payload = {
            "eventId": str(uuid.uuid4()),
            "eventType": event_type,
            "providerId": provider_id,
            kind: body,
        }
        self._outbox.append((provider_id, payload))

    # -- shared transitions -------------------------------------------------------------------

    def _set_state(self, entitlement: r.Entitlement, state: str, when: datetime) -> None:
        """Every state change clears `messageToUser` (discovery document, Entitlement)."""
        entitlement.state = state
        entitlement.update_time = when
        entitlement.message_to_user = ""

    def _term(self, entitlement: r.Entitlement) -> timedelta:
        return timedelta(days=entitlement.term_days)

    def _standard_offer(self, provider_id: str, service_name: str) -> str:
        project = zlib.crc32(provider_id.encode()) % 900_000_000_000 + 100_000_000_000
        return f"projects/{project}/services/{service_name}/standardOffers/{uuid.uuid4()}"

    def _new_consumer(self) -> str:
        return f"project_number:{next(self._project_numbers)}"

    def _ensure_usage_id(self, entitlement: r.Entitlement) -> None:
        product = self._product(entitlement)
        spec = product.plans.get(entitlement.plan) if product else None
        if spec is not None and spec.usage_billed and not entitlement.usage_reporting_id:
            entitlement.usage_reporting_id = self._new_consumer()
            entitlement.consumer_project = (
                "projects/" + entitlement.usage_reporting_id.split(":")[1]
            )

    def _activate(self, entitlement: r.Entitlement, when: datetime) -> None:
        self._set_state(entitlement, r.ACTIVE, when)
        entitlement.activation_time = None
        entitlement.offer_end_time = entitlement.fixed_offer_end or when + self._term(entitlement)
        entitlement.start_period(when, entitlement.plan)
        self._ensure_usage_id(entitlement)
        self._emit("ENTITLEMENT_ACTIVE", entitlement)

    def _cancel_now(self, entitlement: r.Entitlement, when: datetime, reason: str) -> None:
        self._set_state(entitlement, r.CANCELLED, when)
        entitlement.cancellation_reason = reason
        entitlement.new_pending_plan = ""
        entitlement.activation_time = None
        entitlement.end_period(when)
        if entitlement.periods:
            entitlement.subscription_end_time = when
            if entitlement.offer_end_time is None or entitlement.offer_end_time > when:
                entitlement.offer_end_time = when
        else:  # cancelled before any offer started
            entitlement.offer_end_time = None
        self._emit("ENTITLEMENT_CANCELLED", entitlement)

    def _change_plan_now(self, entitlement: r.Entitlement, when: datetime) -> None:
        entitlement.plan = entitlement.new_pending_plan
        entitlement.new_pending_plan = ""
        self._set_state(entitlement, r.ACTIVE, when)
        entitlement.start_period(when, entitlement.plan)
        self._ensure_usage_id(entitlement)
        self._emit("ENTITLEMENT_PLAN_CHANGED", entitlement, newPlan=entitlement.plan)

    def _new_term(self, entitlement: r.Entitlement, start: datetime) -> None:
        entitlement.offer_end_time = start + self._term(entitlement)
        entitlement.update_time = start

    def _end_offer(self, entitlement: r.Entitlement, when: datetime, cancel: bool) -> None:
        """The current offer ends: cancel, or carry on under a standard offer (a new term)."""
        entitlement.offer_end_time = when
        entitlement.update_time = when
        self._emit("ENTITLEMENT_OFFER_ENDED", entitlement, newOfferEndTime=rfc3339(when))
        if cancel:
            self._cancel_now(entitlement, when, "expired")
            return
        entitlement.fixed_offer_end = None
        entitlement.offer = self._standard_offer(entitlement.provider, entitlement.service_name)
        entitlement.offer_history.append(entitlement.offer)
        self._new_term(entitlement, when)

    # -- the clock ----------------------------------------------------------------------------

    @staticmethod
    def _due_time(entitlement: r.Entitlement) -> datetime | None:
        if entitlement.state == r.ACTIVATION_REQUESTED:
            return entitlement.activation_time
        if entitlement.state in r.IN_SERVICE:
            return entitlement.offer_end_time
        return None

    def _compute_next_due(self) -> datetime | None:
        times = [t for e in self._entitlements.values() if (t := self._due_time(e)) is not None]
        return min(times, default=None)

    def _process_due(self, now: datetime) -> None:
        if self._next_due is None or now < self._next_due:
            return
        while True:
            due: tuple[datetime, r.Entitlement] | None = None
            for entitlement in self._entitlements.values():
                when = self._due_time(entitlement)
                if when is not None and when <= now and (due is None or when < due[0]):
                    due = (when, entitlement)
            if due is None:
                break
            self._fire(due[1], due[0])
        self._next_due = self._compute_next_due()

    def _fire(self, entitlement: r.Entitlement, when: datetime) -> None:
        state = entitlement.state
        if state == r.ACTIVATION_REQUESTED:
            self._activate(entitlement, when)
        elif state == r.PENDING_CANCELLATION:
            self._cancel_now(entitlement, when, "user-cancelled")
        elif state == r.PENDING_PLAN_CHANGE:
            self._change_plan_now(entitlement, when)
            self._new_term(entitlement, when)
        elif entitlement.fixed_offer_end is not None and entitlement.fixed_offer_end <= when:
            self._end_offer(entitlement, when, cancel=False)
        else:  # ACTIVE or awaiting a plan-change approval: the term renews
            self._new_term(entitlement, when)
            self._emit("ENTITLEMENT_RENEWED", entitlement)
