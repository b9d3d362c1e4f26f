"""Rebuilding the Procurement backend from the records `marketplace_emulator.persistence` wrote.

`records()` lists every account and entitlement in the order `restore()` needs; `restore()`
replaces the state with them and rebuilds every index at once (sorted once, not record by record),
so a restart with 100,000 entitlements stays well under a second of index work.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.indexes import Key, SortedKeys
from marketplace_emulator.procurement.store import BackendCore


class Restoring(BackendCore):
    def restore(
        self,
        accounts: Iterable[r.Account],
        entitlements: Iterable[tuple[r.Entitlement, bool]],
        next_project_number: int,
    ) -> None:
        """Replace the state with these records: (entitlement, deleted) in insertion order
        (a deleted one: in the order of deletion); every index is rebuilt, nothing is published.
        """
        self.reset()
        with self._lock:
            self._project_numbers.next_value = next_project_number
            account_items: dict[str, list[tuple[datetime, str]]] = {}
            for account in accounts:
                key = (account.provider, account.id)
                self._accounts[key] = account
                self._accounts_by_id.add(account.id, key)
                account_items.setdefault(account.provider, []).append(
                    (account.create_time, account.id)
                )
            entitlement_items: dict[str, list[tuple[datetime, str]]] = {}
            due: list[tuple[Key, int, datetime | None]] = []
            for entitlement, deleted in entitlements:
                key = (entitlement.provider, entitlement.id)
                self._seq[key] = next(self._sequence)
                if entitlement.usage_reporting_id:
                    self._by_usage_id.add(entitlement.usage_reporting_id, key)
                if deleted:
                    self._deleted[key] = entitlement
                    continue
                self._entitlements[key] = entitlement
                self._by_account.add((entitlement.provider, entitlement.account_id), key)
                entitlement_items.setdefault(entitlement.provider, []).append(
                    (entitlement.create_time, entitlement.id)
                )
                due.append((key, self._seq[key], self._due_time(entitlement)))
            self._due.load(due)
            for provider_id, items in account_items.items():
                self._account_order[provider_id] = SortedKeys.of(items)
            for provider_id, items in entitlement_items.items():
                self._entitlement_order[provider_id] = SortedKeys.of(items)
            self._touched.clear()
            self._touched_accounts.clear()
            self._changed.clear()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """No transaction runs until the block ends (a consistent snapshot)."""
        with self._lock:
            yield

    def records(self) -> tuple[list[r.Account], list[tuple[r.Entitlement, bool]]]:
        """Every account, and every entitlement with its deleted flag, in `restore()`'s order."""
        with self._lock:
            found = [(e, False) for e in self._entitlements.values()]
            found += [(e, True) for e in self._deleted.values()]
            found.sort(key=lambda item: self._seq[(item[0].provider, item[0].id)])
            return list(self._accounts.values()), found
