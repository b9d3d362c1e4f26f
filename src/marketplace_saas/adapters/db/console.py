"""The console's read side in SQL: `SqlConsoleReads` over one session, `SqlConsole` opens them.

    with container.console() as reads:      # one short session for everything a page shows
        reads.entitlement(entitlement_id)

Plain dicts, one short query each (the service composes them: `service/console/`). Counts use the
schema's indexes: entitlements by state read only `ix_entitlements_state_product_plan`;
notifications of the last hour read `ix_inbox_status_received_at` once per status; the timeline
of an entitlement reads `inbox.subject_id` and `ix_audit_log_entitlement_id_at`; the usage chart
reads `ix_usage_records_window` and `ix_usage_reports_entitlement_id_window_start`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from marketplace_saas.adapters.db.api_records import SqlApiRecords
from marketplace_saas.adapters.db.console_rows import (
    account_dict,
    audit_dict,
    entitlement_dict,
    inbox_dict,
    report_dict,
)
from marketplace_saas.adapters.db.models import (
    Account,
    AuditLog,
    Customer,
    Entitlement,
    HookOutbox,
    InboxMessage,
    PlanHistory,
    UsageRecord,
    UsageReport,
)
from marketplace_saas.domain.views import INBOX_STATUSES, RecordCounts


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SqlConsole:
    """Opens the console's reads, one session per `with` block (built by `bootstrap`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @contextlib.contextmanager
    def __call__(self) -> Iterator[SqlConsoleReads]:
        with self._sessions() as session:
            yield SqlConsoleReads(session)


class SqlConsoleReads(SqlApiRecords):
    """The console's read models over one session (`service.console.reads.ConsoleReads`)."""

    # -- overview ---------------------------------------------------------------------------

    def counts(self, *, inbox_since: datetime, reports_since: datetime) -> RecordCounts:
        session = self.session
        by_state = {
            str(state): int(count)
            for state, count in session.execute(
                sa.select(Entitlement.state, sa.func.count()).group_by(Entitlement.state)
            )
        }
        by_approval = {
            (approval or "NONE"): int(count)
            for approval, count in session.execute(
                sa.select(Account.signup_approval, sa.func.count())
                .where(Account.deleted_at.is_(None))
                .group_by(Account.signup_approval)
            )
        }
        recent = {
            status: session.scalar(
                sa.select(sa.func.count())
                .select_from(InboxMessage)
                .where(InboxMessage.status == status, InboxMessage.received_at >= inbox_since)
            )
            or 0
            for status in INBOX_STATUSES
        }
        reports = {
            status: session.scalar(
                sa.select(sa.func.count())
                .select_from(UsageReport)
                .where(UsageReport.status == status, UsageReport.window_end >= reports_since)
            )
            or 0
            for status in ("accepted", "rejected")
        }
        count = sa.select(sa.func.count())
        return RecordCounts(
            customers=session.scalar(count.select_from(Customer)) or 0,
            entitlements_by_state=by_state,
            accounts_by_approval=by_approval,
            inbox_since=recent,
            reports_since=reports,
            parked=session.scalar(
                count.select_from(InboxMessage).where(InboxMessage.status == "parked")
            )
            or 0,
            rejected_reports=session.scalar(
                count.select_from(UsageReport).where(UsageReport.status == "rejected")
            )
            or 0,
            dead_hooks=session.scalar(
                count.select_from(HookOutbox).where(HookOutbox.status == "dead")
            )
            or 0,
        )

    # -- accounts ---------------------------------------------------------------------------

    def accounts(self, *, q: str | None, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Accounts and their customer, by id; `q` matches id, name, email, company."""
        statement = (
            sa.select(Account, Customer)
            .outerjoin(Customer, Customer.id == Account.customer_id)
            .order_by(Account.id)
            .limit(limit)
        )
        if q:
            pattern = _like(q.strip())
            statement = statement.where(
                sa.or_(
                    Account.id.like(pattern, escape="\\"),
                    Customer.name.ilike(pattern, escape="\\"),
                    Customer.email.ilike(pattern, escape="\\"),
                    Customer.company.ilike(pattern, escape="\\"),
                )
            )
        if after:
            statement = statement.where(Account.id > after)
        return [account_dict(a, c) for a, c in self.session.execute(statement)]

    def account(self, account_id: str) -> dict[str, Any] | None:
        account = self.session.get(Account, account_id)
        if account is None:
            return None
        customer = self.session.get(Customer, account.customer_id) if account.customer_id else None
        return account_dict(account, customer)

    def entitlements_of_account(self, account_id: str) -> list[dict[str, Any]]:
        rows = self.session.scalars(
            sa.select(Entitlement)
            .where(Entitlement.account_id == account_id)
            .order_by(Entitlement.id)
        )
        return [entitlement_dict(e) for e in rows]

    def audit(
        self, *, account_id: str | None = None, entitlement_id: str | None = None, limit: int
    ) -> list[dict[str, Any]]:
        """The audit trail of an account or of an entitlement, newest first."""
        statement = sa.select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc())
        if account_id is not None:
            statement = statement.where(AuditLog.account_id == account_id)
        if entitlement_id is not None:
            statement = statement.where(AuditLog.entitlement_id == entitlement_id)
        return [audit_dict(a) for a in self.session.scalars(statement.limit(limit))]

    def pending_accounts(self, *, limit: int) -> list[dict[str, Any]]:
        """Live accounts waiting for a sign-up decision, oldest first."""
        rows = self.session.execute(
            sa.select(Account, Customer)
            .outerjoin(Customer, Customer.id == Account.customer_id)
            .where(Account.signup_approval == "PENDING", Account.deleted_at.is_(None))
            .order_by(Account.created_at, Account.id)
            .limit(limit)
        )
        return [account_dict(a, c) for a, c in rows]

    # -- entitlements -----------------------------------------------------------------------

    def entitlements(
        self,
        *,
        state: str | None,
        product: str | None,
        plan: str | None,
        account: str | None,
        after: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Up to `limit` entitlements by id, filtered; each with its customer's name."""
        statement = sa.select(Entitlement).order_by(Entitlement.id).limit(limit)
        for column, value in (
            (Entitlement.state, state),
            (Entitlement.product, product),
            (Entitlement.plan, plan),
            (Entitlement.account_id, account),
        ):
            if value:
                statement = statement.where(column == value)
        if after:
            statement = statement.where(Entitlement.id > after)
        rows = [entitlement_dict(row) for row in self.session.scalars(statement)]
        names = self._customer_names({row["account_id"] for row in rows})
        for row in rows:
            row["customer_name"] = names.get(row["account_id"])
        return rows

    def _customer_names(self, account_ids: set[str]) -> dict[str, str | None]:
        if not account_ids:
            return {}
        statement = (
            sa.select(Account.id, Customer.company, Customer.name)
            .join(Customer, Customer.id == Account.customer_id)
            .where(Account.id.in_(account_ids))
        )
        return {
            account_id: company or name
            for account_id, company, name in self.session.execute(statement)
        }

    def filter_choices(self) -> dict[str, list[str]]:
        """The states, products and plans present, for the list's filter menus."""
        rows = self.session.execute(
            sa.select(Entitlement.state, Entitlement.product, Entitlement.plan).distinct()
        ).all()
        return {
            "states": sorted({r.state for r in rows if r.state}),
            "products": sorted({r.product for r in rows if r.product}),
            "plans": sorted({r.plan for r in rows if r.plan}),
        }

    def entitlement(self, entitlement_id: str) -> dict[str, Any] | None:
        row = self.session.get(Entitlement, entitlement_id)
        return entitlement_dict(row) if row is not None else None

    def entitlements_in_state(self, state: str, *, limit: int) -> list[dict[str, Any]]:
        """Entitlements in `state`, the longest unchanged first."""
        rows = self.session.scalars(
            sa.select(Entitlement)
            .where(Entitlement.state == state)
            .order_by(Entitlement.updated_at, Entitlement.id)
            .limit(limit)
        )
        return [entitlement_dict(r) for r in rows]

    def plan_history(self, entitlement_id: str) -> list[dict[str, Any]]:
        history = self.session.scalars(
            sa.select(PlanHistory)
            .where(PlanHistory.entitlement_id == entitlement_id)
            .order_by(PlanHistory.effective_at, PlanHistory.id)
        )
        return [
            {
                "plan": h.plan,
                "previous_plan": h.previous_plan,
                "effective_at": h.effective_at,
                "event_id": h.event_id,
            }
            for h in history
        ]

    # -- notifications ----------------------------------------------------------------------

    def notifications(
        self,
        *,
        status: str | None = None,
        subject_id: str | None = None,
        before: int | None = None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The inbox, newest first."""
        statement = sa.select(InboxMessage).order_by(InboxMessage.id.desc()).limit(limit)
        if status:
            statement = statement.where(InboxMessage.status == status)
        if subject_id is not None:
            statement = statement.where(InboxMessage.subject_id == subject_id)
        if before is not None:
            statement = statement.where(InboxMessage.id < before)
        return [inbox_dict(r) for r in self.session.scalars(statement)]

    def notification(self, event_id: str) -> dict[str, Any] | None:
        row = self.session.scalars(
            sa.select(InboxMessage).where(InboxMessage.event_id == event_id)
        ).first()
        return inbox_dict(row, full=True) if row else None

    # -- usage ------------------------------------------------------------------------------

    def reports(
        self,
        *,
        status: str | None = None,
        entitlement: str | None = None,
        before: int | None = None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The report ledger, newest first."""
        statement = sa.select(UsageReport).order_by(UsageReport.id.desc()).limit(limit)
        if status:
            statement = statement.where(UsageReport.status == status)
        if entitlement:
            statement = statement.where(UsageReport.entitlement_id == entitlement)
        if before is not None:
            statement = statement.where(UsageReport.id < before)
        return [report_dict(r) for r in self.session.scalars(statement)]

    def report(self, operation_id: str) -> dict[str, Any] | None:
        row = self.session.scalars(
            sa.select(UsageReport).where(UsageReport.operation_id == operation_id)
        ).first()
        return report_dict(row) if row else None

    def ingested_by_hour(
        self, entitlement_id: str, *, start: datetime, end: datetime
    ) -> list[tuple[str, datetime, Decimal]]:
        """(metric, window start, sum of values) of the records in [start, end)."""
        rows = self.session.execute(
            sa.select(UsageRecord.metric, UsageRecord.window_start, sa.func.sum(UsageRecord.value))
            .where(
                UsageRecord.entitlement_id == entitlement_id,
                UsageRecord.window_start >= start,
                UsageRecord.window_start < end,
            )
            .group_by(UsageRecord.metric, UsageRecord.window_start)
        )
        return [(metric, hour, Decimal(total or 0)) for metric, hour, total in rows]

    def accepted_windows(
        self, entitlement_id: str, *, start: datetime, end: datetime
    ) -> list[tuple[datetime, dict[str, Any]]]:
        """(window start, metric values) of the accepted reports starting in [start, end)."""
        rows = self.session.execute(
            sa.select(UsageReport.window_start, UsageReport.metric_values).where(
                UsageReport.entitlement_id == entitlement_id,
                UsageReport.window_start >= start,
                UsageReport.window_start < end,
                UsageReport.status == "accepted",
            )
        )
        return [(window_start, dict(values or {})) for window_start, values in rows]
