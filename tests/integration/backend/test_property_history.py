"""Property: whatever the customers do, and however the notifications arrive, we end at the truth.

Hypothesis draws a policy pair, a Procurement API fault rate, and a random history of customer
actions (purchases, plan changes, cancellations, reverts, renewals, offer ends, deletions, sign-ups,
operator approvals, time passing). Between actions, and at the end, the notifications published so
far are delivered to `handle_message` in a random order, some of them twice; NACKed ones are
delivered again. Finally our records must equal the Procurement API's: state, plan,
newPendingPlan, usageReportingId, deleted, and our service on exactly when the entitlement is
in service, at its plan.

`PROPERTY_EXAMPLES=200` runs more examples than the suite's 25 (a longer hunt, by hand).
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace_emulator.errors import ApiError
from marketplace_emulator.faults import FaultSettings, ProcurementFaults
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Account, Entitlement
from marketplace_saas.adapters.procurement import ProcurementGateway
from marketplace_saas.adapters.procurement_errors import ProcurementError
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.domain.entitlements import IN_SERVICE
from marketplace_saas.domain.errors import MarketplaceError
from marketplace_saas.service.procurement import automatic, decisions
from marketplace_saas.service.procurement.inbox import Disposition, handle_message
from tests.integration.backend.conftest import PROVIDER, backend_settings
from tests.integration.backend.lifecycle_support import encode

pytestmark = pytest.mark.integration

PRODUCT = "example-product"
PLANS = ("basic", "pro")
ACTIONS = (
    "purchase",
    "change_plan",
    "cancel",
    "revert",
    "cancel_plan_change",
    "renew",
    "end_offer",
    "delete_entitlement",
    "delete_account",
    "sign_up",
    "operator",
    "operator",
    "advance",
    "deliver",
    "deliver",
)


@dataclass
class World:
    """One example: the emulator's customers, our container, and the notifications in flight."""

    emulator: Emulator
    container: Container
    data: Any
    accounts: list[str] = field(default_factory=list)
    entitlements: list[str] = field(default_factory=list)
    seen: int = 0
    in_flight: list[dict[str, Any]] = field(default_factory=list)

    def pick(self, items: list[str]) -> str | None:
        return self.data.draw(st.sampled_from(items)) if items else None

    def act(self, action: str) -> None:
        procurement = self.emulator.procurement
        entitlement = self.pick(self.entitlements)
        account = self.pick(self.accounts)
        try:
            if action == "purchase":
                reuse = account if self.data.draw(st.booleans()) else None
                acc, ent = procurement.purchase(
                    PROVIDER, PRODUCT, self.data.draw(st.sampled_from(PLANS)), account_id=reuse
                )
                if acc.id not in self.accounts:
                    self.accounts.append(acc.id)
                self.entitlements.append(ent.id)
            elif action == "advance":
                self.emulator.advance_clock(self.data.draw(st.sampled_from([3600, 31 * 86400])))
            elif action == "deliver":
                self.deliver(drain=False)
            elif action == "sign_up" and account is not None:
                self.sign_up(account)
            elif action == "operator" and entitlement is not None:
                self.operator(entitlement)
            elif action == "delete_account" and account is not None:
                procurement.delete_account(PROVIDER, account)
            elif entitlement is not None:
                self.customer(action, entitlement)
        except ApiError:
            pass  # not allowed in the entitlement's state: the customer could not do it

    def customer(self, action: str, entitlement: str) -> None:
        procurement = self.emulator.procurement
        if action == "change_plan":
            procurement.change_plan(PROVIDER, entitlement, self.data.draw(st.sampled_from(PLANS)))
        elif action == "cancel":
            procurement.cancel(PROVIDER, entitlement, at_term_end=self.data.draw(st.booleans()))
        elif action == "revert":
            procurement.revert_cancellation(PROVIDER, entitlement)
        elif action == "cancel_plan_change":
            procurement.cancel_plan_change(PROVIDER, entitlement)
        elif action == "renew":
            procurement.renew(PROVIDER, entitlement)
        elif action == "end_offer":
            procurement.end_offer(PROVIDER, entitlement, cancel=self.data.draw(st.booleans()))
        elif action == "delete_entitlement":
            procurement.delete_entitlement(PROVIDER, entitlement)

    def sign_up(self, account_id: str) -> None:
        """What the sign-up page does: record the sign-up, then approve per policy."""
        with self.container.sessions.begin() as session:
            row = session.get(Account, account_id)
            if row is None:
                row = Account(id=account_id, provider_id=PROVIDER, approvals={})
                session.add(row)
            row.signed_up_at = datetime.now(UTC)
        # On an error the page says so and the customer may try again.
        with suppress(ProcurementError, MarketplaceError):
            automatic.approve_after_signup(self.container, account_id, actor="signup")

    def operator(self, entitlement_id: str) -> None:
        """An operator approves whatever is pending on one entitlement."""
        for decide in (decisions.approve_entitlement, decisions.approve_plan_change):
            try:
                account = self.emulator.procurement.get_entitlement(PROVIDER, entitlement_id)
                decisions.approve_account(self.container, account.account_id, actor="operator")
                decide(self.container, entitlement_id, actor="operator")
            except (ApiError, ProcurementError, MarketplaceError):
                continue

    def deliver(self, *, drain: bool) -> None:
        """Deliver some (or, draining, all) notifications in a random order, some twice."""
        published = self.emulator.notifications(PROVIDER)
        self.in_flight += published[self.seen :]
        self.seen = len(published)
        for _ in range(200 if drain else 1):
            if not self.in_flight:
                return
            batch = self.data.draw(st.permutations(self.in_flight))
            if not drain:
                batch = batch[: self.data.draw(st.integers(1, len(batch)))]
            for payload in batch:
                self.in_flight.remove(payload)
                copies = 2 if self.data.draw(st.integers(0, 4)) == 0 else 1
                for _ in range(copies):
                    if handle_message(self.container, encode(payload)) is Disposition.NACK:
                        self.in_flight.append(payload)
                        break
            published = self.emulator.notifications(PROVIDER)
            self.in_flight += published[self.seen :]
            self.seen = len(published)
        assert not drain or not self.in_flight, f"never settled: {self.in_flight}"

    def check(self) -> None:
        live = {e.id: e for e in self.emulator.procurement.entitlements(PROVIDER)}
        with self.container.sessions() as session:
            for entitlement_id in self.entitlements:
                row = session.get(Entitlement, entitlement_id)
                truth = live.get(entitlement_id)
                if truth is None:
                    assert row is None or row.deleted_at is not None, entitlement_id
                    continue
                assert row is not None, f"{entitlement_id} never recorded"
                ours = (row.state, row.plan, row.new_pending_plan, row.usage_reporting_id)
                theirs = (
                    truth.state,
                    truth.plan,
                    truth.new_pending_plan or None,
                    truth.usage_reporting_id or None,
                )
                assert ours == theirs, entitlement_id
                assert row.deleted_at is None
                in_service = truth.state in IN_SERVICE
                assert (row.service_enabled, row.service_plan) == (
                    in_service,
                    truth.plan if in_service else None,
                )


@settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "25")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_histories_end_equal_to_the_procurement_api(
    data: Any, emulator: Emulator, emulator_url: str, migrated_database_url: str
) -> None:
    """Duplicated, reordered notifications and API faults: our records end at the API's truth."""
    emulator.reset()
    policy = data.draw(st.sampled_from(["auto", "signup", "manual"]), label="approval policy")
    plan_policy = data.draw(st.sampled_from(["auto", "manual"]), label="plan change policy")
    error_rate = data.draw(st.sampled_from([0.0, 0.1, 0.3]), label="API error rate")
    emulator.faults.configure(
        FaultSettings(
            seed=data.draw(st.integers(0, 1000)),
            procurement=ProcurementFaults(error_rate=error_rate, statuses=[429, 500, 503]),
        )
    )
    config = backend_settings(
        migrated_database_url,
        emulator_url,
        approval_policy=policy,
        plan_change_policy=plan_policy,
        max_delivery_attempts=100,
    )
    gateway = ProcurementGateway(config, max_attempts=3, backoff_base=0.001, backoff_max=0.004)
    container = bootstrap(config, procurement=gateway)
    try:
        world = World(emulator, container, data)
        for _ in range(data.draw(st.integers(1, 3), label="first purchases")):
            world.act("purchase")
        world.act("sign_up")
        world.deliver(drain=False)
        for _ in range(data.draw(st.integers(4, 16), label="steps")):
            world.act(data.draw(st.sampled_from(ACTIONS)))
        world.deliver(drain=True)
        world.check()
    finally:
        emulator.faults.clear()
        container.close()
        gateway.close()
