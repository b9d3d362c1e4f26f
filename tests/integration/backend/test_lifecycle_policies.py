"""APPROVAL_POLICY and PLAN_CHANGE_POLICY, end to end through the emulator's notifications."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Account, PlanHistory
from marketplace_saas.bootstrap import Container
from marketplace_saas.service.procurement import automatic, decisions
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import Feed, entitlement_row, hooks

pytestmark = pytest.mark.integration

PRODUCT = "example-product"


def _sign_up(container: Container, account_id: str) -> None:
    """What the sign-up page records (the sign-up engineer's code does it for real)."""
    with container.sessions.begin() as session:
        account = session.get(Account, account_id)
        assert account is not None
        account.signed_up_at = datetime.now(UTC)


def test_auto_policy_approves_account_and_entitlement_and_turns_the_service_on(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """As in the codelab: ACCOUNT_ACTIVE approves the account, CREATION_REQUESTED the order."""
    container = make_container(approval_policy="auto")
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "pro")
    Feed(emulator, container).deliver()

    assert emulator.procurement.get_account(PROVIDER, account.id).signup_state == "APPROVED"
    assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
        "ENTITLEMENT_ACTIVE"
    )
    row = entitlement_row(container, entitlement.id)
    assert (row.state, row.service_enabled, row.service_plan) == ("ENTITLEMENT_ACTIVE", True, "pro")
    assert row.active_since is not None
    assert row.usage_reporting_id
    assert hooks(container, entitlement.id) == ["entitlement.active"]
    with container.sessions() as session:
        history = session.scalars(sa.select(PlanHistory)).all()
    assert [(h.plan, h.previous_plan) for h in history] == [("pro", None)]


def test_signup_policy_waits_for_the_sign_up_then_approves(
    emulator: Emulator, container: Container
) -> None:
    """Default policy: nothing is approved until the customer signs up on our page."""
    assert container.settings.approval_policy == "signup"
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    feed = Feed(emulator, container)
    feed.deliver()
    assert emulator.procurement.get_account(PROVIDER, account.id).signup_state == "PENDING"
    row = entitlement_row(container, entitlement.id)
    assert (row.state, row.service_enabled) == ("ENTITLEMENT_ACTIVATION_REQUESTED", False)

    _sign_up(container, account.id)
    automatic.approve_after_signup(container, account.id, actor="signup")
    feed.deliver()
    row = entitlement_row(container, entitlement.id)
    assert (row.state, row.service_enabled, row.service_plan) == (
        "ENTITLEMENT_ACTIVE",
        True,
        "basic",
    )
    assert hooks(container, entitlement.id) == ["entitlement.active"]


def test_signup_policy_approves_later_orders_of_a_signed_up_customer(
    emulator: Emulator, container: Container
) -> None:
    """A second purchase by a customer who already signed up is approved by the lifecycle."""
    account, _ = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    feed = Feed(emulator, container)
    feed.deliver()
    _sign_up(container, account.id)
    automatic.approve_after_signup(container, account.id, actor="signup")
    feed.deliver()

    _, second = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic", account_id=account.id)
    feed.deliver()
    row = entitlement_row(container, second.id)
    assert (row.state, row.service_enabled) == ("ENTITLEMENT_ACTIVE", True)


def test_manual_policy_records_and_waits_for_an_operator(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="manual")
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    feed = Feed(emulator, container)
    feed.deliver()
    _sign_up(container, account.id)  # signing up is not enough under the manual policy
    feed.deliver()
    assert emulator.procurement.get_account(PROVIDER, account.id).signup_state == "PENDING"
    assert entitlement_row(container, entitlement.id).state == "ENTITLEMENT_ACTIVATION_REQUESTED"

    decisions.approve_account(container, account.id, actor="operator:ada")
    decisions.approve_entitlement(container, entitlement.id, actor="operator:ada")
    feed.deliver()
    assert entitlement_row(container, entitlement.id).service_enabled


def _active(emulator: Emulator, container: Container, plan: str = "basic") -> tuple[Feed, str]:
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, plan)
    feed = Feed(emulator, container)
    feed.deliver()
    if container.settings.approval_policy != "auto":
        _sign_up(container, account.id)
        automatic.approve_after_signup(container, account.id, actor="signup")
        feed.deliver()
    assert entitlement_row(container, entitlement.id).service_enabled
    return feed, entitlement.id


def test_auto_plan_change_policy_approves_and_moves_the_service_to_the_new_plan(
    emulator: Emulator, container: Container
) -> None:
    assert container.settings.plan_change_policy == "auto"
    feed, entitlement_id = _active(emulator, container)
    emulator.procurement.change_plan(PROVIDER, entitlement_id, "pro")
    feed.deliver()
    row = entitlement_row(container, entitlement_id)
    assert (row.state, row.plan, row.service_plan, row.new_pending_plan) == (
        "ENTITLEMENT_ACTIVE",
        "pro",
        "pro",
        None,
    )
    assert hooks(container, entitlement_id) == ["entitlement.active", "entitlement.plan_changed"]
    with container.sessions() as session:
        history = session.scalars(sa.select(PlanHistory).order_by(PlanHistory.id)).all()
    assert [(h.plan, h.previous_plan) for h in history] == [("basic", None), ("pro", "basic")]
    assert history[1].effective_at >= history[0].effective_at


def test_manual_plan_change_policy_waits_and_keeps_the_service_on_the_old_plan(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="auto", plan_change_policy="manual")
    feed, entitlement_id = _active(emulator, container)
    emulator.procurement.change_plan(PROVIDER, entitlement_id, "pro")
    feed.deliver()
    row = entitlement_row(container, entitlement_id)
    assert (row.state, row.new_pending_plan, row.service_plan) == (
        "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL",
        "pro",
        "basic",
    )
    assert row.service_enabled

    decisions.approve_plan_change(container, entitlement_id, actor="operator:ada")
    feed.deliver()
    assert entitlement_row(container, entitlement_id).service_plan == "pro"
