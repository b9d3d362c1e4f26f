"""The console's read models, as the use cases see them (`adapters/db/console.py` is the SQL).

Each method is one short query; rows are plain dicts with the columns' names. `limit` is the
number of rows to read (the callers ask for one more than a page to know whether another follows).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from marketplace_saas.domain.views import RecordCounts

Row = dict[str, Any]


class ConsoleReads(Protocol):
    """The console's reads over one session."""

    def counts(self, *, inbox_since: datetime, reports_since: datetime) -> RecordCounts: ...
    def accounts(self, *, q: str | None, after: str | None, limit: int) -> list[Row]: ...
    def account(self, account_id: str) -> Row | None: ...
    def entitlements_of_account(self, account_id: str) -> list[Row]: ...
    def audit(
        self, *, account_id: str | None = None, entitlement_id: str | None = None, limit: int
    ) -> list[Row]: ...
    def pending_accounts(self, *, limit: int) -> list[Row]: ...
    def entitlements(
        self,
        *,
        state: str | None,
        product: str | None,
        plan: str | None,
        account: str | None,
        after: str | None,
        limit: int,
    ) -> list[Row]: ...
    def filter_choices(self) -> dict[str, list[str]]: ...
    def entitlement(self, entitlement_id: str) -> Row | None: ...
    def entitlements_in_state(self, state: str, *, limit: int) -> list[Row]: ...
    def plan_history(self, entitlement_id: str) -> list[Row]: ...
    def notifications(
        self,
        *,
        status: str | None = None,
        subject_id: str | None = None,
        before: int | None = None,
        limit: int,
    ) -> list[Row]: ...
    def notification(self, event_id: str) -> Row | None: ...
    def reports(
        self,
        *,
        status: str | None = None,
        entitlement: str | None = None,
        before: int | None = None,
        limit: int,
    ) -> list[Row]: ...
    def report(self, operation_id: str) -> Row | None: ...
    def ingested_by_hour(
        self, entitlement_id: str, *, start: datetime, end: datetime
    ) -> list[tuple[str, datetime, Decimal]]: ...
    def accepted_windows(
        self, entitlement_id: str, *, start: datetime, end: datetime
    ) -> list[tuple[datetime, dict[str, Any]]]: ...

    # The CLI's records: the Procurement API's field names (as its GET answers), plus ours.
    def api_accounts(self) -> list[Row]: ...
    def api_account(self, account_id: str) -> Row | None: ...
    def api_entitlements(
        self, *, state: str | None = None, account: str | None = None, product: str | None = None
    ) -> list[Row]: ...
    def api_entitlement(self, entitlement_id: str) -> Row | None: ...
    def api_events(
        self, *, status: str | None = None, event_type: str | None = None, limit: int = 50
    ) -> list[Row]: ...
    def api_event(self, event_id: str) -> Row | None: ...


class ConsoleViews(Protocol):
    """Opens `ConsoleReads` for one `with` block (`container.console`)."""

    def __call__(self) -> AbstractContextManager[ConsoleReads]: ...
