"""Bulk seeding for benchmarks and tests: N accounts and entitlements in a given state, silently.

`seed()` drives each entitlement through the same transitions a purchase, the provider's approvals
and the customer's actions would (so the state is exactly what those calls leave), in one write,
and then drops the notifications those transitions queued: nothing is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.billing import BillingActions
from marketplace_emulator.procurement.customer import OfferTerms, PurchaseData
from marketplace_emulator.procurement.exceptions import InvalidArgument

SEED_STATES = (r.ACTIVATION_REQUESTED, r.ACTIVE, r.PENDING_CANCELLATION, r.CANCELLED)
SEED_MAX = 1_000_000


@dataclass(frozen=True)
class Seeded:
    account_id: str
    entitlement_id: str


def seed_state(value: str) -> str:
    """A state as the filter accepts it (case-insensitive, `ENTITLEMENT_` optional)."""
    state = value.upper()
    if not state.startswith("ENTITLEMENT_"):
        state = "ENTITLEMENT_" + state
    if state not in SEED_STATES:
        raise InvalidArgument(
            f"Cannot seed entitlements in state {value!r} (allowed: {', '.join(SEED_STATES)})."
        )
    return state


class Seeding(BillingActions):
    def seed(
        self,
        provider_id: str,
        count: int,
        *,
        product_id: str = "example-product",
        plan: str = "",
        state: str = r.ACTIVE,
        account_prefix: str = "",
    ) -> list[Seeded]:
        """Create `count` accounts, each with one entitlement in `state`; publish nothing.

        Accounts are `{account_prefix}{i}` (a fresh UUID each when no prefix is given) with their
        `signup` approval APPROVED, except for ACTIVATION_REQUESTED, where it stays PENDING as
        after a purchase. `plan` defaults to the product's first plan. An ACTIVE entitlement is
        active from now, a PENDING_CANCELLATION one ends at its term end, a CANCELLED one was
        cancelled now (`user-cancelled`).
        """
        if not 0 <= count <= SEED_MAX:
            raise InvalidArgument(f"count must be between 0 and {SEED_MAX} (got {count}).")
        state = seed_state(state)
        product = self.catalog.get(provider_id, product_id)
        if product is None:
            raise InvalidArgument(f"Unknown product {product_id!r}.")
        plan = plan or next(iter(product.plans), "")
        if plan not in product.plans:
            raise InvalidArgument(f"Unknown plan {plan!r} for product {product_id!r}.")
        seeded: list[Seeded] = []
        with self._write() as now:
            queued = len(self._outbox)
            try:
                for i in range(count):
                    account_id = f"{account_prefix}{i}" if account_prefix else None
                    account, entitlement = self._buy(
                        provider_id,
                        product_id,
                        product,
                        plan,
                        account_id,
                        None,
                        OfferTerms(),
                        now,
                        PurchaseData(),
                    )
                    if state != r.ACTIVATION_REQUESTED:
                        self._approve_seeded(account, entitlement, state, now)
                    seeded.append(Seeded(account.id, entitlement.id))
            finally:
                del self._outbox[queued:]  # seeding publishes nothing
        return seeded

    def _approve_seeded(
        self, account: r.Account, entitlement: r.Entitlement, state: str, now: datetime
    ) -> None:
        approval = account.approvals[r.SIGNUP]
        approval.state, approval.update_time = "APPROVED", now
        account.update_time = now
        if entitlement.state == r.ACTIVATION_REQUESTED and not entitlement.approved:
            self._approve(entitlement, now, event=None)
        if entitlement.state == r.ACTIVATION_REQUESTED:  # an activation delay: active from now
            self._activate(entitlement, now)
        if state == r.PENDING_CANCELLATION:
            self._set_state(entitlement, r.PENDING_CANCELLATION, now)
            entitlement.subscription_end_time = entitlement.offer_end_time
        elif state == r.CANCELLED:
            self._cancel_now(entitlement, now, "user-cancelled")
