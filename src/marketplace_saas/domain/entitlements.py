"""Accounts and entitlements as the Procurement API returns them, and what a change of one means.

`AccountView` and `EntitlementView` read the API's JSON (reference sections 1.5 and 1.6).
`service_transition()` decides, from what we had and what the API now says, whether the
provider's service is on, at which plan, and which provisioning hooks that change raises.
Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marketplace_saas.domain.events import EventType, Hook
from marketplace_saas.domain.time import optional_time

ACCOUNT_ACTIVE = "ACCOUNT_ACTIVE"
SIGNUP_APPROVAL = "signup"
APPROVAL_PENDING = "PENDING"
APPROVAL_APPROVED = "APPROVED"
APPROVAL_REJECTED = "REJECTED"

ACTIVATION_REQUESTED = "ENTITLEMENT_ACTIVATION_REQUESTED"
ACTIVE = "ENTITLEMENT_ACTIVE"
PENDING_CANCELLATION = "ENTITLEMENT_PENDING_CANCELLATION"
CANCELLED = "ENTITLEMENT_CANCELLED"
PENDING_PLAN_CHANGE = "ENTITLEMENT_PENDING_PLAN_CHANGE"
PENDING_PLAN_CHANGE_APPROVAL = "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"
SUSPENDED = "ENTITLEMENT_SUSPENDED"
DELETED = "DELETED"  # ours, not Google's: GET answered 404

# States in which the customer holds a usable entitlement: our service is on.
IN_SERVICE = frozenset(
    {ACTIVE, PENDING_CANCELLATION, PENDING_PLAN_CHANGE, PENDING_PLAN_CHANGE_APPROVAL}
)


def bare_id(name: str) -> str:
    """`providers/p/accounts/abc` -> `abc` (a bare id is returned unchanged)."""
    return name.rstrip("/").rsplit("/", 1)[-1]


def _str(resource: dict[str, Any], key: str) -> str | None:
    value = resource.get(key)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class AccountView:
    id: str
    state: str | None
    approvals: dict[str, dict[str, Any]]
    create_time: datetime | None
    update_time: datetime | None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def signup_state(self) -> str | None:
        approval = self.approvals.get(SIGNUP_APPROVAL)
        state = approval.get("state") if approval else None
        return state if isinstance(state, str) else None

    @classmethod
    def from_api(cls, resource: dict[str, Any]) -> AccountView:
        approvals: dict[str, dict[str, Any]] = {}
        for item in resource.get("approvals") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                approvals[item["name"]] = {k: v for k, v in item.items() if k != "name"}
        return cls(
            id=bare_id(str(resource.get("name", ""))),
            state=_str(resource, "state"),
            approvals=approvals,
            create_time=optional_time(resource.get("createTime")),
            update_time=optional_time(resource.get("updateTime")),
            raw=resource,
        )


@dataclass(frozen=True)
class EntitlementView:
    id: str
    account_id: str
    state: str
    product: str | None = None
    plan: str | None = None
    new_pending_plan: str | None = None
    offer: str | None = None
    offer_end_time: datetime | None = None
    new_offer_start_time: datetime | None = None
    new_offer_end_time: datetime | None = None
    subscription_end_time: datetime | None = None
    usage_reporting_id: str | None = None
    cancellation_reason: str | None = None
    message_to_user: str | None = None
    order_id: str | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def in_service(self) -> bool:
        return self.state in IN_SERVICE

    @property
    def approved_awaiting_start(self) -> bool:
        """Approved but not active yet: Google sets `newOfferStartTime` once approved."""
        return self.state == ACTIVATION_REQUESTED and self.new_offer_start_time is not None

    @classmethod
    def from_api(cls, resource: dict[str, Any]) -> EntitlementView:
        return cls(
            id=bare_id(str(resource.get("name", ""))),
            account_id=bare_id(str(resource.get("account", ""))),
            state=_str(resource, "state") or "ENTITLEMENT_STATE_UNSPECIFIED",
            # The API's `product` (deprecated, still sent); its external name when it is absent.
            product=_str(resource, "product") or _str(resource, "productExternalName"),
            plan=_str(resource, "plan"),
            new_pending_plan=_str(resource, "newPendingPlan"),
            offer=_str(resource, "offer"),
            offer_end_time=optional_time(resource.get("offerEndTime")),
            new_offer_start_time=optional_time(resource.get("newOfferStartTime")),
            new_offer_end_time=optional_time(resource.get("newOfferEndTime")),
            subscription_end_time=optional_time(resource.get("subscriptionEndTime")),
            usage_reporting_id=_str(resource, "usageReportingId"),
            cancellation_reason=_str(resource, "cancellationReason"),
            message_to_user=_str(resource, "messageToUser"),
            order_id=_str(resource, "orderId"),
            create_time=optional_time(resource.get("createTime")),
            update_time=optional_time(resource.get("updateTime")),
            raw=resource,
        )


def is_stale(applied: datetime | None, incoming: datetime | None) -> bool:
    """True when `incoming` is older than the version already applied (it must change nothing)."""
    return applied is not None and incoming is not None and incoming < applied


@dataclass(frozen=True)
class Before:
    """What our records said about an entitlement before this change (None: never seen)."""

    state: str | None = None
    service_enabled: bool = False
    service_plan: str | None = None
    offer_end_time: datetime | None = None
    offer: str | None = None


@dataclass(frozen=True)
class Transition:
    service_enabled: bool
    service_plan: str | None
    hooks: tuple[Hook, ...]
    turned_on: bool = False
    turned_off: bool = False
    plan_changed: bool = False


def service_transition(
    before: Before, after: EntitlementView | None, *, event_type: str | None = None
) -> Transition:
    """Our service's state after the API's `after` (None: the entitlement is deleted)."""
    new_state = after.state if after is not None else DELETED
    on = after is not None and after.in_service
    plan = after.plan if after is not None and on else None
    hooks: list[Hook] = []
    turned_on = on and not before.service_enabled
    turned_off = before.service_enabled and not on
    plan_changed = on and before.service_enabled and before.service_plan != plan

    if turned_on:
        hooks.append(
            Hook.ENTITLEMENT_RESTORED if before.state == SUSPENDED else Hook.ENTITLEMENT_ACTIVE
        )
    if plan_changed:
        hooks.append(Hook.ENTITLEMENT_PLAN_CHANGED)
    if new_state == PENDING_CANCELLATION and before.state != PENDING_CANCELLATION:
        hooks.append(Hook.ENTITLEMENT_PENDING_CANCELLATION)
    if before.state == PENDING_CANCELLATION and on and new_state != PENDING_CANCELLATION:
        hooks.append(Hook.ENTITLEMENT_CANCELLATION_REVERTED)
    renewed = on and event_type == EventType.ENTITLEMENT_RENEWED
    if renewed and after is not None and before.offer_end_time != after.offer_end_time:
        hooks.append(Hook.ENTITLEMENT_RENEWED)
    if event_type == EventType.ENTITLEMENT_OFFER_ENDED and after is not None:
        moved_on = (before.offer, before.offer_end_time) != (after.offer, after.offer_end_time)
        # An offer that ended without a new one: its end is past (usage-based, awaiting a plan
        # change's approval) or the entitlement ended with it (cancelled `expired`).
        ended_here = (
            after.offer_end_time is not None
            and after.update_time is not None
            and after.offer_end_time <= after.update_time
            and (turned_off or on)
        )
        if moved_on or ended_here:
            hooks.append(Hook.ENTITLEMENT_OFFER_ENDED)
    if turned_off:  # last: an offer that ended with the entitlement says so first
        hooks.append(
            Hook.ENTITLEMENT_SUSPENDED if new_state == SUSPENDED else Hook.ENTITLEMENT_CANCELLED
        )
    return Transition(
        service_enabled=on,
        service_plan=plan,
        hooks=tuple(hooks),
        turned_on=turned_on,
        turned_off=turned_off,
        plan_changed=plan_changed,
    )
