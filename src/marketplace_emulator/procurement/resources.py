"""The emulated resources: accounts, their approvals, entitlements and their plan history.

Plain mutable records guarded by the backend's lock. `to_json()` gives the API resource as the
discovery document describes it (output fields that are empty are omitted, as Google's JSON does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from marketplace_emulator.clock import rfc3339
from marketplace_emulator.procurement.offers import add_duration, iso_duration

# Entitlement states (EntitlementState in the discovery document).
ACTIVATION_REQUESTED = "ENTITLEMENT_ACTIVATION_REQUESTED"
ACTIVE = "ENTITLEMENT_ACTIVE"
PENDING_CANCELLATION = "ENTITLEMENT_PENDING_CANCELLATION"
CANCELLED = "ENTITLEMENT_CANCELLED"
PENDING_PLAN_CHANGE = "ENTITLEMENT_PENDING_PLAN_CHANGE"
PENDING_PLAN_CHANGE_APPROVAL = "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"

# States in which the customer holds a usable, billable entitlement.
IN_SERVICE = frozenset(
    {ACTIVE, PENDING_CANCELLATION, PENDING_PLAN_CHANGE, PENDING_PLAN_CHANGE_APPROVAL}
)

SIGNUP = "signup"


@dataclass
class Approval:
    name: str
    state: str
    update_time: datetime
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "updateTime": rfc3339(self.update_time),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class Account:
    id: str
    provider: str
    create_time: datetime
    update_time: datetime
    approvals: dict[str, Approval] = field(default_factory=dict)
    state: str = "ACCOUNT_ACTIVE"
    input_properties: dict[str, Any] = field(default_factory=dict)
    reseller_parent_billing_account: str = ""  # `billingAccounts/{id}`, resold subaccounts only
    products: list[str] = field(default_factory=list)  # product ids bought (notification setting)

    @property
    def name(self) -> str:
        return f"providers/{self.provider}/accounts/{self.id}"

    @property
    def signup_state(self) -> str:
        approval = self.approvals.get(SIGNUP)
        return approval.state if approval else "STATE_UNSPECIFIED"

    def to_json(self, full: bool = False) -> dict[str, Any]:
        """The resource; `full` (ACCOUNT_VIEW_FULL) adds `resellerParentBillingAccount`."""
        out: dict[str, Any] = {
            "name": self.name,
            "provider": self.provider,
            "state": self.state,
            "approvals": [a.to_json() for a in self.approvals.values()],
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time),
        }
        if self.input_properties:
            out["inputProperties"] = dict(self.input_properties)
        if full and self.reseller_parent_billing_account:
            out["resellerParentBillingAccount"] = self.reseller_parent_billing_account
        return out


@dataclass(frozen=True)
class PlanPeriod:
    """A span during which the entitlement was in service on one plan; `end` None = still is."""

    start: datetime
    end: datetime | None
    plan: str

    def contains(self, time: datetime) -> bool:
        return self.start <= time and (self.end is None or time < self.end)


@dataclass
class Entitlement:
    id: str
    provider: str
    account_id: str
    product: str  # the catalog's product id
    service_name: str
    plan: str
    state: str
    create_time: datetime
    update_time: datetime
    term_days: int
    offer: str
    new_pending_plan: str = ""
    usage_reporting_id: str = ""
    consumer_project: str = ""
    message_to_user: str = ""
    cancellation_reason: str = ""
    offer_end_time: datetime | None = None
    fixed_offer_end: datetime | None = None  # an offer with an end date instead of a duration
    offer_start_time: datetime | None = None  # the purchased offer's scheduled start
    activation_time: datetime | None = None  # set on approval: when it becomes ACTIVE
    subscription_end_time: datetime | None = None
    offer_history: list[str] = field(default_factory=list)
    periods: list[PlanPeriod] = field(default_factory=list)
    deleted: bool = False
    # The current offer's terms (see offers.py): "" = the product's `termDays`.
    offer_duration: str = ""
    auto_renew: bool = True
    private_offer: bool = False
    offer_term_ended: bool = False  # a usage-based private offer ended during a plan change
    quote_external_name: str = ""
    entitlement_benefit_ids: list[str] = field(default_factory=list)
    input_properties: dict[str, Any] = field(default_factory=dict)
    # The offer a pending plan change moves to.
    pending_offer: str = ""
    pending_offer_duration: str = ""
    pending_offer_end: datetime | None = None
    pending_auto_renew: bool = True
    pending_private: bool = False
    migrated_from: str = ""  # the entitlement whose resources move here (cancelled `migrated`)

    @property
    def name(self) -> str:
        return f"providers/{self.provider}/entitlements/{self.id}"

    @property
    def account_name(self) -> str:
        return f"providers/{self.provider}/accounts/{self.account_id}"

    @property
    def approved(self) -> bool:
        return self.activation_time is not None

    @property
    def activated_at(self) -> datetime | None:
        return self.periods[0].start if self.periods else None

    @property
    def cancelled_at(self) -> datetime | None:
        if self.state != CANCELLED or not self.periods:
            return None
        return self.periods[-1].end

    def plan_at(self, time: datetime) -> str | None:
        """The plan in service at `time`, or None when the entitlement was not in service."""
        for period in self.periods:
            if period.contains(time):
                return period.plan
        return None

    def start_period(self, when: datetime, plan: str) -> None:
        self.end_period(when)
        self.periods.append(PlanPeriod(when, None, plan))

    def end_period(self, when: datetime) -> None:
        if self.periods and self.periods[-1].end is None:
            last = self.periods[-1]
            self.periods[-1] = PlanPeriod(last.start, when, last.plan)

    def filter_fields(self) -> dict[str, list[str]]:
        """Attribute values for the `entitlements.list` filter (see filters.py)."""

        def one(value: str) -> list[str]:
            return [value] if value else []

        return {
            "account": [self.account_id, self.account_name],
            "customer_billing_account": [],
            "product_external_name": one(self.service_name),
            "quote_external_name": one(self.quote_external_name),
            "offer": one(self.offer),
            "new_pending_offer": one(self.new_pending_offer),
            "plan": one(self.plan),
            "new_pending_plan": one(self.new_pending_plan),
            "state": [self.state],
            "services": one(self.service_name),
            "product": [self.product, self.service_name, f"{self.provider}:{self.product}"],
            "consumers.project": one(self.consumer_project),
            "change_history.new_offer": list(self.offer_history),
        }

    @property
    def plan_change_pending(self) -> bool:
        return self.state in (PENDING_PLAN_CHANGE, PENDING_PLAN_CHANGE_APPROVAL)

    @property
    def new_pending_offer(self) -> str:
        return self.pending_offer if self.plan_change_pending else ""

    @property
    def current_duration(self) -> str:
        """The current offer's duration, empty when it has an end date instead."""
        if self.fixed_offer_end is not None:
            return ""
        return self.offer_duration or iso_duration(self.term_days)

    def term_end(self, start: datetime) -> datetime:
        """When a term of the current offer starting at `start` ends."""
        if self.fixed_offer_end is not None:
            return self.fixed_offer_end
        if self.offer_duration:
            return add_duration(start, self.offer_duration)
        return start + timedelta(days=self.term_days)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "provider": self.provider,
            "account": self.account_name,
            "product": self.product,
            "productExternalName": self.service_name,
            "plan": self.plan,
            "state": self.state,
            "offer": self.offer,
            "orderId": self.id,
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time),
        }
        optional: dict[str, str] = {
            "offerDuration": self.current_duration,
            "quoteExternalName": self.quote_external_name,
            "newPendingPlan": self.new_pending_plan,
            "newPendingOffer": self.new_pending_offer,
            "usageReportingId": self.usage_reporting_id,
            "messageToUser": self.message_to_user,
            "cancellationReason": self.cancellation_reason,
        }
        pending = self.plan_change_pending
        if pending and self.pending_offer_end is None:
            optional["newPendingOfferDuration"] = self.pending_offer_duration or iso_duration(
                self.term_days
            )
        out.update({k: v for k, v in optional.items() if v})
        times: dict[str, datetime | None] = {
            "offerEndTime": self.offer_end_time,
            "subscriptionEndTime": self.subscription_end_time,
            "newOfferStartTime": self._new_offer_start(),
            "newOfferEndTime": self.pending_offer_end if pending else None,
        }
        out.update({k: rfc3339(v) for k, v in times.items() if v is not None})
        if self.consumer_project:
            out["consumers"] = [{"project": self.consumer_project}]
        if self.entitlement_benefit_ids:
            out["entitlementBenefitIds"] = list(self.entitlement_benefit_ids)
        if self.input_properties:
            out["inputProperties"] = dict(self.input_properties)
        return out

    def _new_offer_start(self) -> datetime | None:
        if self.state == ACTIVATION_REQUESTED:
            return self.activation_time
        if self.state == PENDING_PLAN_CHANGE:
            return self.offer_end_time
        return None
