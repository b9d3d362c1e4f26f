"""Provisioning hooks: their names, their typed payloads, and the retry schedule.

A hook tells the provider's own systems that something happened to a customer's service:
turn it on (`entitlement.active`), change it, turn it off (`entitlement.cancelled`), erase the
customer's data (`account.deleted`). Pure rules only: no I/O here.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from marketplace_saas.domain.events import Hook

__all__ = ["Hook"]  # the hook names live with the event types (domain.events)

HOOK_NAMES = frozenset(hook.value for hook in Hook)
ACCOUNT_HOOKS = frozenset({Hook.CUSTOMER_SIGNED_UP, Hook.ACCOUNT_DELETED})


class HookStatus(StrEnum):
    PENDING = "pending"  # waiting for its turn, or in flight (leased until next_attempt_at)
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after HOOK_MAX_ATTEMPTS; holds back later items of its ordering key
    SKIPPED = "skipped"  # no configured receiver wants this hook
    DISCARDED = "discarded"  # an operator gave up on it; later items of the key proceed


# The order rule: an item is delivered only once every older item with the same ordering key
# is settled. Items in these states hold back later items with the same ordering key (so an
# entitlement's `cancelled` never goes out before its `active`); other keys are never held back.
BLOCKING_STATUSES = (HookStatus.PENDING.value, HookStatus.DEAD.value)
STATUSES = tuple(status.value for status in HookStatus)


@dataclass(frozen=True)
class HookClaim:
    """An outbox item claimed for one delivery attempt; `attempts` is the claim's fencing token."""

    id: int
    hook: str
    ordering_key: str
    idempotency_key: str
    payload: dict[str, object]
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class HookItem:
    """An outbox item as operators see it; `blocked_by`: the dead item holding it back."""

    id: int
    hook: str
    status: str
    ordering_key: str
    idempotency_key: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    payload: dict[str, Any]
    blocked_by: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hook": self.hook,
            "status": self.status,
            "orderingKey": self.ordering_key,
            "idempotencyKey": self.idempotency_key,
            "attempts": self.attempts,
            # Only a pending item has a next attempt (for the others it is a stale lease end).
            "nextAttemptAt": self.next_attempt_at if self.status == HookStatus.PENDING else None,
            "createdAt": self.created_at,
            "deliveredAt": self.delivered_at,
            "lastError": self.last_error,
            "blockedBy": self.blocked_by,
            "payload": self.payload,
        }


def _pick(cls: type[Any], data: dict[str, Any] | None) -> Any:
    if not data:
        return None
    names = {item.name for item in fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})


@dataclass(frozen=True)
class CustomerInfo:
    """Our own customer record (none before sign-up; names are empty once erased)."""

    id: str
    name: str | None = None
    email: str | None = None
    company: str | None = None


@dataclass(frozen=True)
class AccountInfo:
    """The procurement account (id = Google's account id)."""

    id: str
    state: str | None = None
    signup_approval: str | None = None


@dataclass(frozen=True)
class EntitlementInfo:
    """The entitlement as the Procurement API last showed it (times as RFC 3339 strings)."""

    id: str
    account_id: str
    state: str
    product: str | None = None
    plan: str | None = None
    new_pending_plan: str | None = None
    usage_reporting_id: str | None = None
    offer: str | None = None
    offer_end_time: str | None = None
    subscription_end_time: str | None = None
    cancellation_reason: str | None = None
    # domain.offers.OfferTerms as a dict: offer duration or end, renewal, pending offer, migrated
    offer_terms: dict[str, Any] | None = None


@dataclass(frozen=True)
class HookPayload:
    """What a receiver is told. `plan` is the plan to serve now; `previous_plan` the one before.

    `reason` says why (a cancellation reason, a Service Control check error, an event type).
    `provision_before_approve` is true on an `entitlement.active` delivered before the
    entitlement is approved: the approval waits for the receiver's success.
    """

    customer: CustomerInfo | None = None
    account: AccountInfo | None = None
    entitlement: EntitlementInfo | None = None
    plan: str | None = None
    previous_plan: str | None = None
    reason: str | None = None
    provision_before_approve: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HookPayload:
        return cls(
            customer=_pick(CustomerInfo, data.get("customer")),
            account=_pick(AccountInfo, data.get("account")),
            entitlement=_pick(EntitlementInfo, data.get("entitlement")),
            plan=data.get("plan"),
            previous_plan=data.get("previous_plan"),
            reason=data.get("reason"),
            provision_before_approve=bool(data.get("provision_before_approve", False)),
            extra=dict(data.get("extra") or {}),
        )

    def default_ordering_key(self) -> str:
        """Entitlement hooks are ordered per entitlement; account hooks per account."""
        if self.entitlement is not None:
            return self.entitlement.id
        if self.account is not None:
            return self.account.id
        if self.customer is not None:
            return f"customer:{self.customer.id}"
        raise ValueError("a hook payload names no entitlement, account or customer")


def idempotency_key(hook: str, subject_id: str, version: str) -> str:
    """A deterministic key: the same fact enqueued twice is one outbox item.

    `version` names the fact: an event id, the resource's updateTime, or a plan name.
    """
    return f"{hook}:{subject_id}:{version}"[:200]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped; dead after `max_attempts` failed attempts."""

    max_attempts: int = 10
    base_seconds: float = 5.0
    cap_seconds: float = 3600.0

    def delay(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """The wait after the `attempts`-th failed attempt (1-based): between half and all of
        `base * 2**(attempts-1)`, never more than the cap."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** max(attempts - 1, 0)))
        draw = (rng or random).uniform(0.5, 1.0)
        return timedelta(seconds=ceiling * draw)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
