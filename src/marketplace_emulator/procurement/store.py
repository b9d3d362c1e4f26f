"""The Procurement backend's state, its lock, its notifications and its clock-driven transitions.

`BackendCore` owns the accounts and entitlements of every provider. Each public operation runs in
`_write()` or `_read()`: both take the lock and first apply every transition that fell due (offer
starts and activation delays, term ends, pending plan changes and cancellations) in time order,
stamped with the time it was due, so moving the clock is deterministic. Notifications are queued
under the lock and published after it is released, in the order they happened.

Nothing on a request's path scans every entitlement (see indexes.py). Due times live in a heap
ordered by (due time, insertion sequence), the order in which a scan of the entitlements would
find them. Every entitlement a write looks up (`_entitlement`, `_account_entitlements`) or creates
is marked touched, and its due time is rescheduled when the write ends; an entry made stale by a
change is skipped when it reaches the top of the heap.

Persistence (`marketplace_emulator.persistence`) sets `journal`: whatever a transaction changed
(the entitlements it touched or fired, the accounts it looked up, added or removed) is handed to
`journal.store_changed()` under the lock when the transaction ends, in the order of the changes;
`restore()` rebuilds the state and every index from the records it wrote.
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from marketplace_emulator.catalog import Catalog, Product
from marketplace_emulator.clock import Clock, rfc3339
from marketplace_emulator.events import EventSink
from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.exceptions import (
    AccountNotFound,
    EntitlementNotFound,
    WrongState,
)
from marketplace_emulator.procurement.indexes import DueQueue, OrderedIndex, SortedKeys

Key = tuple[str, str]
REASON_MAX_BYTES = 256
FIRST_PROJECT_NUMBER = 100_000_000_001


@dataclass(frozen=True)
class Changed:
    """An entitlement a transaction changed: live, deleted, or gone (`record` None, on reset)."""

    key: Key
    record: r.Entitlement | None
    deleted: bool
    seq: int


class Numbers:
    """`itertools.count` that tells its next value (persisted with the state)."""

    def __init__(self, start: int) -> None:
        self.next_value = start

    def __iter__(self) -> Numbers:
        return self

    def __next__(self) -> int:
        value = self.next_value
        self.next_value += 1
        return value


class StoreJournal(Protocol):
    def store_changed(
        self,
        entitlements: list[Changed],
        accounts: list[tuple[Key, r.Account | None]],
        next_project_number: int,
    ) -> None: ...


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
        self._project_numbers = Numbers(FIRST_PROJECT_NUMBER)
        self.journal: StoreJournal | None = None
        self._changed: set[Key] = set()
        self._touched_accounts: set[Key] = set()
        self._due = DueQueue()
        self._seq: dict[Key, int] = {}  # order of insertion (of deletion, once deleted)
        self._sequence = itertools.count()
        self._touched: set[Key] = set()
        self._by_account: OrderedIndex[Key, Key] = OrderedIndex()
        self._by_usage_id: OrderedIndex[str, Key] = OrderedIndex()
        self._accounts_by_id: OrderedIndex[str, Key] = OrderedIndex()
        self._account_order: dict[str, SortedKeys] = {}
        self._entitlement_order: dict[str, SortedKeys] = {}

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[datetime]:
        with self._lock:
            now = self.clock.now()
            self._process_due(now)
            self._commit()
        self._flush()
        with self._lock:
            try:
                yield now
            finally:
                self._touched.clear()  # a read changes nothing
                self._touched_accounts.clear()

    @contextmanager
    def _write(self) -> Iterator[datetime]:
        try:
            with self._lock:
                now = self.clock.now()
                self._process_due(now)
                try:
                    yield now
                finally:
                    self._changed.update(self._touched)
                    self._reschedule_touched()
                    self._commit()
        finally:
            self._flush()

    def _commit(self) -> None:
        """Hand what the transaction changed to the journal (under the lock).

        The account of each changed entitlement goes with it, whether or not it was looked up.
        """
        if self.journal is not None and (self._changed or self._touched_accounts):
            changed = []
            for key in self._changed:
                found, deleted = self._entitlements.get(key), False
                if found is None:
                    found = self._deleted.get(key)
                    deleted = found is not None
                if found is not None:
                    self._touched_accounts.add((found.provider, found.account_id))
                changed.append(Changed(key, found, deleted, self._seq.get(key, -1)))
            accounts = [(key, self._accounts.get(key)) for key in self._touched_accounts]
            self.journal.store_changed(changed, accounts, self._project_numbers.next_value)
        self._changed = set()
        self._touched_accounts = set()

    def _flush(self) -> None:
        with self._publish_lock:
            with self._lock:
                batch, self._outbox = self._outbox, []
            for provider_id, payload in batch:
                self.sink.publish(provider_id, payload)

    @property
    def next_project_number(self) -> int:
        """The project number the next usage-billed entitlement gets (`project_number:N`)."""
        return self._project_numbers.next_value

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
            self._project_numbers = Numbers(FIRST_PROJECT_NUMBER)
            self._changed.clear()
            self._touched_accounts.clear()
            self._due.clear()
            self._seq.clear()
            self._touched.clear()
            self._by_account.clear()
            self._by_usage_id.clear()
            self._accounts_by_id.clear()
            self._account_order.clear()
            self._entitlement_order.clear()

    # -- lookups ------------------------------------------------------------------------------

    def _account(self, provider_id: str, account_id: str) -> r.Account:
        account = self._accounts.get((provider_id, account_id))
        if account is None:
            raise AccountNotFound(provider_id, account_id)
        self._touched_accounts.add((provider_id, account_id))
        return account

    def _entitlement(self, provider_id: str, entitlement_id: str) -> r.Entitlement:
        entitlement = self._entitlements.get((provider_id, entitlement_id))
        if entitlement is None:
            raise EntitlementNotFound(provider_id, entitlement_id)
        self._touched.add((provider_id, entitlement_id))
        return entitlement

    def _account_entitlements(self, provider_id: str, account_id: str) -> list[r.Entitlement]:
        """The account's live entitlements, oldest insertion first (all marked touched)."""
        keys = self._by_account.get((provider_id, account_id))
        self._touched.update(keys)
        return [self._entitlements[key] for key in keys]

    # -- indexes ------------------------------------------------------------------------------

    def _add_account(self, account: r.Account) -> None:
        key = (account.provider, account.id)
        self._accounts[key] = account
        self._touched_accounts.add(key)
        self._accounts_by_id.add(account.id, key)
        order = self._account_order.setdefault(account.provider, SortedKeys())
        order.add(account.create_time, account.id)

    def _remove_account(self, account: r.Account) -> None:
        key = (account.provider, account.id)
        del self._accounts[key]
        self._touched_accounts.add(key)
        self._accounts_by_id.remove(account.id, key)
        self._account_order[account.provider].remove(account.create_time, account.id)

    def _add_entitlement(self, entitlement: r.Entitlement) -> None:
        key = (entitlement.provider, entitlement.id)
        self._entitlements[key] = entitlement
        self._seq[key] = next(self._sequence)
        self._touched.add(key)
        self._by_account.add((entitlement.provider, entitlement.account_id), key)
        if entitlement.usage_reporting_id:
            self._by_usage_id.add(entitlement.usage_reporting_id, key)
        order = self._entitlement_order.setdefault(entitlement.provider, SortedKeys())
        order.add(entitlement.create_time, entitlement.id)

    def _remove_entitlement(self, entitlement: r.Entitlement) -> None:
        """Live -> deleted (it stays findable by usageReportingId)."""
        key = (entitlement.provider, entitlement.id)
        self._changed.add(key)
        self._deleted[key] = self._entitlements.pop(key)
        self._seq[key] = next(self._sequence)  # from now on: the order of deletion
        self._due.discard(key)
        self._by_account.remove((entitlement.provider, entitlement.account_id), key)
        order = self._entitlement_order[entitlement.provider]
        order.remove(entitlement.create_time, entitlement.id)

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

    # -- the clock ----------------------------------------------------------------------------

    @staticmethod
    def _due_time(entitlement: r.Entitlement) -> datetime | None:
        if entitlement.state == r.ACTIVATION_REQUESTED:
            return entitlement.activation_time
        if entitlement.offer_term_ended:  # waits for the plan change to be decided
            return None
        if entitlement.state in r.IN_SERVICE:
            return entitlement.offer_end_time
        return None

    def _schedule(self, key: Key) -> None:
        entitlement = self._entitlements.get(key)
        if entitlement is None:
            self._due.discard(key)
        else:
            self._due.set(key, self._seq[key], self._due_time(entitlement))

    def _reschedule_touched(self) -> None:
        for key in self._touched:
            self._schedule(key)
        self._touched.clear()

    def _next_due_time(self) -> datetime | None:
        top = self._due.peek()
        return top[0] if top is not None else None

    def _process_due(self, now: datetime) -> None:
        """Fire every transition due by `now`: earliest first, equal times in insertion order."""
        while (top := self._due.peek()) is not None and top[0] <= now:
            when, key = top
            self._due.pop()
            entitlement = self._entitlements[key]
            if self._due_time(entitlement) == when:
                self._changed.add(key)
                self._fire(entitlement, when)
            self._schedule(key)

    def _fire(self, entitlement: r.Entitlement, when: datetime) -> None:
        """Apply the transition due at `when` (transitions.py)."""
        raise NotImplementedError
