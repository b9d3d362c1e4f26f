"""A sync takes every decision the policies would take for what is still waiting.

What a restarted listener relies on: the notification that should have led to a decision was
lost (the process died), and the sync at start takes that decision instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Account
from marketplace_saas.service.procurement.reconcile import sync_all
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import entitlement_row

pytestmark = pytest.mark.integration

PRODUCT = "example-product"


def _active(emulator: Emulator, plan: str = "basic") -> str:
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, plan)
    emulator.procurement.approve_account(PROVIDER, account.id, "signup")
    emulator.procurement.approve_entitlement(PROVIDER, entitlement.id)
    return entitlement.id


@pytest.mark.parametrize(("policy", "approved"), [("auto", True), ("manual", False)])
def test_a_waiting_plan_change_is_approved_under_plan_change_policy_auto_only(
    emulator: Emulator, make_container: ContainerFactory, policy: str, approved: bool
) -> None:
    container = make_container(approval_policy="auto", plan_change_policy=policy)
    entitlement_id = _active(emulator)
    emulator.procurement.change_plan(PROVIDER, entitlement_id, "pro")  # its message is lost

    result = sync_all(container)

    api = emulator.procurement.get_entitlement(PROVIDER, entitlement_id)
    assert (f"{entitlement_id}:approve_plan_change:pro" in result.decisions) is approved
    assert (api.state == "ENTITLEMENT_ACTIVE" and api.plan == "pro") is approved
    row = entitlement_row(container, entitlement_id)
    assert (row.state, row.plan) == (api.state, api.plan)


def test_under_signup_a_signed_up_customers_waiting_entitlement_is_approved(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """Sign-up done, its approvals lost (a crash): the sync approves; before sign-up it waits."""
    container = make_container(approval_policy="signup")
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")

    before = sync_all(container)
    assert before.decisions == []  # not signed up: nothing to decide yet
    with container.sessions.begin() as session:
        row = session.get(Account, account.id)
        assert row is not None
        row.signed_up_at = datetime.now(UTC)
    after = sync_all(container)

    assert after.decisions == [
        f"{account.id}:approve_account",
        f"{entitlement.id}:approve_entitlement",
    ]
    state = emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state
    assert state == entitlement_row(container, entitlement.id).state == "ENTITLEMENT_ACTIVE"
