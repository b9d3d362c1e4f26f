"""The Procurement API's rules and state: what each provider method does, and when it refuses.

`ProcurementBackend` is the emulator's single source of truth for accounts and entitlements. The
provider's API calls are here; the customer's actions are in `customer.py`; the state, the lock,
notifications and clock-driven transitions are in `store.py`.

Decisions Google does not document (reference 1.9, 6) are marked [unconfirmed]:
- a wrong-state call answers 400 FAILED_PRECONDITION;
- approving an entitlement whose account's `signup` approval is not APPROVED answers 400
  FAILED_PRECONDITION;
- approving again an entitlement already approved and waiting to start succeeds and changes nothing;
- `entitlements.suspend` answers 501 UNIMPLEMENTED ("not yet supported").
"""

from __future__ import annotations

from datetime import datetime

from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.customer import snapshot_account
from marketplace_emulator.procurement.exceptions import (
    FailedPrecondition,
    InvalidArgument,
    Unimplemented,
)
from marketplace_emulator.procurement.filters import (
    And,
    Comparison,
    Filter,
    FilterError,
    MatchAll,
    parse_filter,
)
from marketplace_emulator.procurement.paging import paginate, paginate_stream
from marketplace_emulator.procurement.restoring import Restoring
from marketplace_emulator.procurement.seeding import Seeding
from marketplace_emulator.procurement.store import snapshot, truncate_reason

ACCOUNTS_PAGE_DEFAULT, ACCOUNTS_PAGE_MAX = 25, 200
ENTITLEMENTS_PAGE_DEFAULT, ENTITLEMENTS_PAGE_MAX = 200, 1000

Entitlement = r.Entitlement
Account = r.Account
PlanPeriod = r.PlanPeriod

__all__ = ["Account", "Entitlement", "PlanPeriod", "ProcurementBackend"]


def _page_size(requested: int | None, default: int, maximum: int) -> int:
    if requested is None or requested == 0:
        return default
    if requested < 0:
        raise InvalidArgument(f"pageSize must not be negative (got {requested}).")
    return min(requested, maximum)


def _account_constraint(predicate: Filter, provider_id: str) -> set[str] | None:
    """Account ids a filter requires (`account=X`, alone or ANDed at the top), else None."""
    comparisons = predicate.operands if isinstance(predicate, And) else (predicate,)
    for comparison in comparisons:
        if (
            isinstance(comparison, Comparison)
            and comparison.attribute == "account"
            and comparison.op == "="
        ):
            value = comparison.value
            return {value, value.removeprefix(f"providers/{provider_id}/accounts/")}
    return None


class ProcurementBackend(Seeding, Restoring):
    """Accounts and entitlements of every provider, the provider's API, and customer actions.

    Account notifications follow the setting of the products the account bought (catalog.py):
    "approvals" sends an ACCOUNT_ACTIVE message each time an approval changes state
    [unconfirmed event type: Google's example account message has none]; `accounts.reset` sends
    none, as Google's codelab says.
    """

    # -- accounts -----------------------------------------------------------------------------

    def get_account(self, provider_id: str, account_id: str) -> r.Account:
        """The account (`to_json(full=True)` for ACCOUNT_VIEW_FULL)."""
        with self._read():
            return snapshot_account(self._account(provider_id, account_id))

    def list_accounts(
        self, provider_id: str, page_size: int | None = None, page_token: str = ""
    ) -> tuple[list[r.Account], str | None]:
        size = _page_size(page_size, ACCOUNTS_PAGE_DEFAULT, ACCOUNTS_PAGE_MAX)
        with self._read():
            order = self._account_order.get(provider_id)
            ids = order.ids() if order is not None else iter(())
            query = f"accounts|{provider_id}"
            page, token = paginate_stream(ids, size, page_token, query)
            return [snapshot_account(self._accounts[(provider_id, i)]) for i in page], token

    def _approval(self, account: r.Account, approval_name: str) -> r.Approval:
        name = approval_name or r.SIGNUP  # the only approval an account has
        approval = account.approvals.get(name)
        if approval is None:
            raise InvalidArgument(
                f"Account {account.name} has no approval named {name!r} "
                f"(it has: {', '.join(account.approvals)})."
            )
        return approval

    def approve_account(
        self,
        provider_id: str,
        account_id: str,
        approval_name: str = "",
        reason: str = "",
        properties: dict[str, str] | None = None,
    ) -> None:
        """Grant an approval (`signup` when the name is omitted); a REJECTED one may be granted."""
        self._decide(provider_id, account_id, approval_name, reason, "APPROVED")

    def reject_account(
        self, provider_id: str, account_id: str, approval_name: str = "", reason: str = ""
    ) -> None:
        self._decide(provider_id, account_id, approval_name, reason, "REJECTED")

    def _decide(
        self, provider_id: str, account_id: str, approval_name: str, reason: str, state: str
    ) -> None:
        with self._write() as now:
            account = self._account(provider_id, account_id)
            approval = self._approval(account, approval_name)
            changed = approval.state != state
            approval.state = state
            approval.reason = truncate_reason(reason)
            approval.update_time = now
            account.update_time = now
            if changed and self._account_notifications(account) == "approvals":
                self._emit_account("ACCOUNT_ACTIVE", account, now)

    def _account_notifications(self, account: r.Account) -> str:
        """The most talkative account-notification setting among the products it bought."""
        levels = ("off", "creation", "approvals")
        found = [self.catalog.get(account.provider, p) for p in account.products]
        settings = [p.account_notifications for p in found if p is not None]
        return max(settings, key=levels.index, default="off")

    def reset_account(self, provider_id: str, account_id: str) -> None:
        """`signup` goes back to PENDING and every entitlement of the account is cancelled."""
        with self._write() as now:
            account = self._account(provider_id, account_id)
            account.approvals[r.SIGNUP] = r.Approval(r.SIGNUP, "PENDING", now)
            account.update_time = now
            for entitlement in self._account_entitlements(provider_id, account_id):
                if entitlement.state != r.CANCELLED:
                    self._cancel_now(entitlement, now, "unknown")

    # -- entitlements -------------------------------------------------------------------------

    def get_entitlement(self, provider_id: str, entitlement_id: str) -> r.Entitlement:
        with self._read():
            return snapshot(self._entitlement(provider_id, entitlement_id))

    def list_entitlements(
        self,
        provider_id: str,
        filter_text: str = "",
        page_size: int | None = None,
        page_token: str = "",
    ) -> tuple[list[r.Entitlement], str | None]:
        try:
            predicate = parse_filter(filter_text)
        except FilterError as exc:
            raise InvalidArgument(str(exc)) from None
        size = _page_size(page_size, ENTITLEMENTS_PAGE_DEFAULT, ENTITLEMENTS_PAGE_MAX)
        query = f"entitlements|{provider_id}|{filter_text}"
        with self._read():
            accounts = _account_constraint(predicate, provider_id)
            if accounts is not None:  # the account index narrows the candidates
                candidates = sorted(
                    (
                        self._entitlements[key]
                        for account_id in accounts
                        for key in self._by_account.get((provider_id, account_id))
                    ),
                    key=lambda e: (e.create_time, e.id),
                )
                matching = [e for e in candidates if predicate.matches(e.filter_fields())]
                page, token = paginate(matching, size, page_token, query)
                return [snapshot(e) for e in page], token
            order = self._entitlement_order.get(provider_id)
            ids = order.ids() if order is not None else iter(())
            live = (self._entitlements[(provider_id, i)] for i in ids)
            if isinstance(predicate, MatchAll):
                found = live
            else:
                found = (e for e in live if predicate.matches(e.filter_fields()))
            page, token = paginate_stream(found, size, page_token, query)
            return [snapshot(e) for e in page], token

    def patch_entitlement(
        self, provider_id: str, entitlement_id: str, message_to_user: str
    ) -> r.Entitlement:
        """Set `messageToUser`, allowed only while activation or a plan change awaits approval."""
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            self._require(
                entitlement,
                "update messageToUser of",
                r.ACTIVATION_REQUESTED,
                r.PENDING_PLAN_CHANGE_APPROVAL,
            )
            entitlement.message_to_user = message_to_user
            entitlement.update_time = now
            return snapshot(entitlement)

    def approve_entitlement(
        self, provider_id: str, entitlement_id: str, entitlement_migrated: str = ""
    ) -> None:
        """Approve activation; ACTIVE after the activation delay or at the offer's start time."""
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            self._require(entitlement, "approve", r.ACTIVATION_REQUESTED)
            migrated = entitlement_migrated and self._check_migrated(
                entitlement, entitlement_migrated
            )
            if entitlement.approved:
                return
            account = self._accounts.get((provider_id, entitlement.account_id))
            if account is None or account.signup_state != "APPROVED":
                state = account.signup_state if account else "deleted"
                raise FailedPrecondition(
                    f"Cannot approve {entitlement.name}: its account's signup approval is "
                    f"{state}, not APPROVED. Approve the account first."
                )
            if migrated:
                entitlement.migrated_from = migrated
            self._approve(entitlement, now, event=None)

    def reject_entitlement(self, provider_id: str, entitlement_id: str, reason: str = "") -> None:
        """Refuse activation: the entitlement is CANCELLED with the reason given."""
        with self._write() as now:
            entitlement = self._entitlement(provider_id, entitlement_id)
            self._require(entitlement, "reject", r.ACTIVATION_REQUESTED)
            self._cancel_now(entitlement, now, truncate_reason(reason) or "unknown")

    def _pending_change(
        self, provider_id: str, entitlement_id: str, pending_plan_name: str, action: str
    ) -> r.Entitlement:
        entitlement = self._entitlement(provider_id, entitlement_id)
        self._require(entitlement, action, r.PENDING_PLAN_CHANGE_APPROVAL)
        if pending_plan_name != entitlement.new_pending_plan:
            raise FailedPrecondition(
                f"pendingPlanName {pending_plan_name!r} does not match the pending plan "
                f"{entitlement.new_pending_plan!r} of {entitlement.name}."
            )
        return entitlement

    def approve_plan_change(
        self, provider_id: str, entitlement_id: str, pending_plan_name: str
    ) -> None:
        """Apply the pending plan now, or at the end of the term, per the product's setting."""
        with self._write() as now:
            entitlement = self._pending_change(
                provider_id, entitlement_id, pending_plan_name, "approve the plan change of"
            )
            self._apply_plan_change(entitlement, now)

    def reject_plan_change(
        self, provider_id: str, entitlement_id: str, pending_plan_name: str, reason: str = ""
    ) -> None:
        """Drop the pending plan: ACTIVE on the old plan (ENTITLEMENT_PLAN_CHANGE_CANCELLED)."""
        with self._write() as now:
            entitlement = self._pending_change(
                provider_id, entitlement_id, pending_plan_name, "reject the plan change of"
            )
            self._drop_plan_change(entitlement, now)

    def suspend_entitlement(self, provider_id: str, entitlement_id: str, reason: str = "") -> None:
        with self._read():
            self._entitlement(provider_id, entitlement_id)
        raise Unimplemented("Suspending an entitlement is not yet supported.")

    # -- for Service Control and the control API ------------------------------------------------

    def find_by_usage_reporting_id(
        self, consumer_id: str, include_deleted: bool = False
    ) -> list[r.Entitlement]:
        """Entitlements reported under `consumer_id`, with their plan periods (`plan_at`)."""
        with self._read():
            keys = self._by_usage_id.get(consumer_id)
            live = sorted((k for k in keys if k in self._entitlements), key=self._seq.__getitem__)
            found = [self._entitlements[k] for k in live]
            if include_deleted:
                # in the order they were deleted (a deleted key's sequence is its deletion's)
                deleted = sorted((k for k in keys if k in self._deleted), key=self._seq.__getitem__)
                found += [self._deleted[k] for k in deleted]
            return [snapshot(e) for e in found]

    def account_orders(self, provider_id: str, account_id: str) -> list[str]:
        """Order ids of the account's entitlements not cancelled, oldest first (sign-up JWT)."""
        with self._read():
            found = self._by_account.get((provider_id, account_id))
            live = [self._entitlements[k] for k in found]
            return [
                e.id
                for e in sorted(live, key=lambda e: (e.create_time, e.id))
                if e.state != r.CANCELLED
            ]

    def find_accounts(self, account_id: str) -> list[r.Account]:
        """Accounts with this id, under any provider (the sign-up token issuer looks them up)."""
        with self._read():
            return [
                snapshot_account(self._accounts[k]) for k in self._accounts_by_id.get(account_id)
            ]

    def entitlements(self, provider_id: str | None = None) -> list[r.Entitlement]:
        """Every live entitlement (of one provider), oldest first."""
        with self._read():
            providers = [provider_id] if provider_id is not None else list(self._entitlement_order)
            found = [
                snapshot(self._entitlements[(p, i)])
                for p in providers
                if p in self._entitlement_order
                for i in self._entitlement_order[p].ids()
            ]
        return sorted(found, key=lambda e: (e.create_time, e.id))

    def next_transition_time(self) -> datetime | None:
        """When the next clock-driven transition falls due (None: nothing is scheduled)."""
        with self._read():
            return self._next_due_time()
