"""Provider decisions through `service.approvals`, against the emulator over HTTP."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Account, AuditLog, Entitlement, HookOutbox
from marketplace_saas.adapters.procurement_errors import FailedPreconditionError
from marketplace_saas.bootstrap import Container
from marketplace_saas.domain.errors import NothingToDecide, ResourceNotFound
from marketplace_saas.service.procurement import automatic, decisions
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import api_calls

pytestmark = pytest.mark.integration


def _entitlement(container: Container, entitlement_id: str) -> Entitlement:
    with container.sessions() as session:
        row = session.get(Entitlement, entitlement_id)
        assert row is not None
        return row


def test_approving_account_then_entitlement_turns_the_service_on(
    emulator: Emulator, container: Container
) -> None:
    """approve_account, then approve_entitlement: ACTIVE at Google, service on, hook queued."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "pro")
    result = decisions.approve_account(container, account.id, actor="operator:ada")
    assert (result.outcome, result.state) == ("approved", "APPROVED")
    result = decisions.approve_entitlement(container, entitlement.id, actor="operator:ada")
    assert (result.outcome, result.state) == ("approved", "ENTITLEMENT_ACTIVE")

    assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
        "ENTITLEMENT_ACTIVE"
    )
    row = _entitlement(container, entitlement.id)
    assert (row.state, row.service_enabled, row.service_plan) == ("ENTITLEMENT_ACTIVE", True, "pro")
    assert row.usage_reporting_id
    with container.sessions() as session:
        account_row = session.get(Account, account.id)
        assert account_row is not None
        assert account_row.signup_approval == "APPROVED"
        hooks = session.scalars(sa.select(HookOutbox.hook)).all()
        assert hooks == ["entitlement.active"]
        actions = session.scalars(
            sa.select(AuditLog.action).where(AuditLog.kind == "change").order_by(AuditLog.id)
        ).all()
        calls = session.scalars(
            sa.select(AuditLog.action).where(AuditLog.kind == "api_call").order_by(AuditLog.id)
        ).all()
    assert "approve_account" in actions
    assert "approve_entitlement" in actions
    assert calls.count("approve_entitlement") == 1
    assert calls.count("get_entitlement") == 2  # before and after the decision


def test_approving_twice_is_benign_and_calls_google_once(
    emulator: Emulator, container: Container
) -> None:
    """The second approval sees the decision taken and answers already_approved."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    decisions.approve_account(container, account.id, actor="signup")
    assert decisions.approve_account(container, account.id, actor="signup").outcome == (
        "already_approved"
    )
    decisions.approve_entitlement(container, entitlement.id, actor="signup")
    again = decisions.approve_entitlement(container, entitlement.id, actor="signup")
    assert again.outcome == "already_approved"
    assert api_calls(container, "approve_entitlement") == 1


def test_entitlement_approval_before_the_account_is_refused_clearly(
    emulator: Emulator, container: Container
) -> None:
    """Google refuses; the error is raised (not swallowed as benign) and the refusal audited."""
    _, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    with pytest.raises(FailedPreconditionError, match="Approve the account first"):
        decisions.approve_entitlement(container, entitlement.id, actor="operator:ada")
    row = _entitlement(container, entitlement.id)
    assert row.state == "ENTITLEMENT_ACTIVATION_REQUESTED"
    assert not row.service_enabled


def test_unknown_resources_and_wrong_states_are_clear_errors(
    emulator: Emulator, container: Container
) -> None:
    with pytest.raises(ResourceNotFound, match="no entitlement 'nope'"):
        decisions.approve_entitlement(container, "nope", actor="operator:ada")
    with pytest.raises(ResourceNotFound, match="no account 'nope'"):
        decisions.approve_account(container, "nope", actor="operator:ada")
    _, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    with pytest.raises(NothingToDecide, match="ENTITLEMENT_ACTIVATION_REQUESTED"):
        decisions.approve_plan_change(container, entitlement.id, actor="operator:ada")


def test_rejecting_an_entitlement_cancels_it(emulator: Emulator, container: Container) -> None:
    _, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    result = decisions.reject_entitlement(
        container, entitlement.id, actor="operator:ada", reason="region not served"
    )
    assert (result.outcome, result.state) == ("rejected", "ENTITLEMENT_CANCELLED")
    row = _entitlement(container, entitlement.id)
    assert row.cancellation_reason == "region not served"
    assert not row.service_enabled


def test_plan_change_approval_echoes_the_pending_plan(
    emulator: Emulator, container: Container
) -> None:
    """approve_plan_change sends newPendingPlan read from GET; the service moves to it."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    automatic.approve_after_signup(container, account.id, actor="signup")
    emulator.procurement.change_plan(PROVIDER, entitlement.id, "pro")
    result = decisions.approve_plan_change(container, entitlement.id, actor="operator:ada")
    assert (result.outcome, result.state) == ("approved", "ENTITLEMENT_ACTIVE")
    row = _entitlement(container, entitlement.id)
    assert (row.plan, row.service_plan, row.new_pending_plan) == ("pro", "pro", None)


def test_plan_change_rejection_keeps_the_old_plan(emulator: Emulator, container: Container) -> None:
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    automatic.approve_after_signup(container, account.id, actor="signup")
    emulator.procurement.change_plan(PROVIDER, entitlement.id, "pro")
    result = decisions.reject_plan_change(
        container, entitlement.id, actor="operator:ada", reason="downgrade first"
    )
    assert result.outcome == "rejected"
    row = _entitlement(container, entitlement.id)
    assert (row.state, row.plan, row.service_plan) == ("ENTITLEMENT_ACTIVE", "basic", "basic")


def test_approve_after_signup_approves_the_account_and_every_waiting_entitlement(
    emulator: Emulator, container: Container
) -> None:
    """Several entitlements per account (and per product) are approved together."""
    account, first = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    _, second = emulator.procurement.purchase(
        PROVIDER, "example-product", "basic", account_id=account.id
    )
    results = automatic.approve_after_signup(container, account.id, actor="signup")
    assert [(r.kind, r.outcome) for r in results] == [
        ("account", "approved"),
        ("entitlement", "approved"),
        ("entitlement", "approved"),
    ]
    for entitlement_id in (first.id, second.id):
        assert _entitlement(container, entitlement_id).service_enabled


def test_approve_after_signup_under_manual_policy_approves_nothing(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="manual")
    account, _ = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    assert automatic.approve_after_signup(container, account.id, actor="signup") == []
    assert emulator.procurement.get_account(PROVIDER, account.id).signup_state == "PENDING"
    with container.sessions() as session:
        row = session.get(Account, account.id)
        assert row is not None
        assert row.signup_approval == "PENDING"


def test_approving_a_rejected_plan_change_is_nothing_to_decide(
    emulator: Emulator, container: Container
) -> None:
    """After a rejection nothing waits: NothingToDecide, not already_approved, no Google call."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    automatic.approve_after_signup(container, account.id, actor="signup")
    emulator.procurement.change_plan(PROVIDER, entitlement.id, "pro")
    decisions.reject_plan_change(
        container, entitlement.id, actor="operator:ada", reason="downgrade first"
    )
    with pytest.raises(NothingToDecide, match="no plan change is waiting"):
        decisions.approve_plan_change(container, entitlement.id, actor="operator:ada")
    row = _entitlement(container, entitlement.id)
    assert (row.plan, row.service_plan) == ("basic", "basic")
    assert api_calls(container, "approve_plan_change") == 0


def test_rejecting_an_approved_plan_change_that_took_effect_is_nothing_to_decide(
    emulator: Emulator, container: Container
) -> None:
    """After an approved change took effect nothing waits: NothingToDecide, not already_rejected;
    a second rejection of a rejected change stays already_rejected."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    automatic.approve_after_signup(container, account.id, actor="signup")
    emulator.procurement.change_plan(PROVIDER, entitlement.id, "pro")
    decisions.reject_plan_change(container, entitlement.id, actor="operator:ada", reason="no")
    again = decisions.reject_plan_change(container, entitlement.id, actor="operator:ada", reason="")
    assert again.outcome == "already_rejected"
    emulator.procurement.change_plan(PROVIDER, entitlement.id, "pro")
    result = decisions.approve_plan_change(container, entitlement.id, actor="operator:ada")
    assert (result.outcome, result.state) == ("approved", "ENTITLEMENT_ACTIVE")
    with pytest.raises(NothingToDecide, match="no plan change is waiting"):
        decisions.reject_plan_change(container, entitlement.id, actor="operator:ada", reason="x")
    row = _entitlement(container, entitlement.id)
    assert (row.plan, row.service_plan) == ("pro", "pro")
    assert api_calls(container, "reject_plan_change") == 1


def test_resetting_an_account_records_and_audits_it(
    emulator: Emulator, container: Container
) -> None:
    """reset_account: Google resets the sign-up; our record follows, with its audit rows."""
    account, _ = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    decisions.approve_account(container, account.id, actor="operator:ada")
    result = decisions.reset_account(container, account.id, actor="operator:ada")
    assert (result.outcome, result.state) == ("reset", "PENDING")
    with container.sessions() as session:
        row = session.get(Account, account.id)
        assert row is not None
        assert row.signup_approval == "PENDING"
        change = session.scalars(
            sa.select(AuditLog).where(AuditLog.kind == "change", AuditLog.action == "reset_account")
        ).one()
        calls = session.scalars(
            sa.select(AuditLog.action).where(AuditLog.kind == "api_call").order_by(AuditLog.id)
        ).all()
    assert (change.outcome, change.actor) == ("reset", "operator:ada")
    assert calls[-3:] == ["get_account", "reset_account", "get_account"]
    with pytest.raises(ResourceNotFound, match="no account 'nope'"):
        decisions.reset_account(container, "nope", actor="operator:ada")
