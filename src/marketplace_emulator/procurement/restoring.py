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
            account_keys = []
            for account in accounts:
                key = (account.provider, account.id)
                self._accounts[key] = account
                account_keys.append((account.id, key))
                items = account_items.get(account.provider)
                if items is None:
                    items = account_items[account.provider] = []
                items.append((account.create_time, account.id))
            self._accounts_by_id.add_all(account_keys)
            self._restore_entitlements(entitlements)
            for provider_id, items in account_items.items():
                self._account_order[provider_id] = SortedKeys.of(items)
            self._touched.clear()
            self._touched_accounts.clear()
            self._changed.clear()

    def _restore_entitlements(self, entitlements: Iterable[tuple[r.Entitlement, bool]]) -> None:
        """The entitlements and every index over them, each built in bulk (a restart)."""
        entitlement_items: dict[str, list[tuple[datetime, str]]] = {}
        due: list[tuple[Key, int, datetime | None]] = []
        by_usage_id: list[tuple[str, Key]] = []
        by_account: list[tuple[Key, Key]] = []
        seqs, sequence, due_time = self._seq, self._sequence, self._due_time
        live, deleted_ones = self._entitlements, self._deleted
        for entitlement, deleted in entitlements:
            provider_id = entitlement.provider
            key = (provider_id, entitlement.id)
            seq = seqs[key] = next(sequence)
            if entitlement.usage_reporting_id:
                by_usage_id.append((entitlement.usage_reporting_id, key))
            if deleted:
                deleted_ones[key] = entitlement
                continue
            live[key] = entitlement
            by_account.append(((provider_id, entitlement.account_id), key))
            items = entitlement_items.get(provider_id)
            if items is None:
                items = entitlement_items[provider_id] = []
            items.append((entitlement.create_time, entitlement.id))
            due.append((key, seq, due_time(entitlement)))
        self._by_usage_id.add_all(by_usage_id)
        self._by_account.add_all(by_account)
        self._due.load(due)
        for provider_id, items in entitlement_items.items():
            self._entitlement_order[provider_id] = SortedKeys.of(items)

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
