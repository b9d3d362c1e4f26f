"""The sign-up's rules on in-memory fakes (no database, no HTTP): who is claimed, what is approved
per APPROVAL_POLICY, what a second completion does (`service.signup.claim`)."""

from __future__ import annotations

import pytest

from marketplace_saas.domain.entitlements import ACTIVATION_REQUESTED, ACTIVE
from marketplace_saas.domain.signup import Visitor
from marketplace_saas.service import signup
from tests.unit.backend.fakes import FakeApp

FORM = {"name": "Ada Lovelace", "email": "ada@example.com", "company": "Engines"}


def buyer(app: FakeApp) -> Visitor:
    app.procurement.add_account("a-1", signup="PENDING")
    app.procurement.add_entitlement("e-1", account="a-1", state=ACTIVATION_REQUESTED)
    return Visitor("a-1", user_identity="u-1", orders=("o-1",))


def approvals_asked(app: FakeApp) -> list[tuple[str, str]]:
    return [r for r in app.procurement.requests if r[0].startswith("approve")]


def test_a_completed_signup_claims_the_account_and_approves_it_and_its_purchase() -> None:
    app = FakeApp(approval_policy="signup")
    visitor = buyer(app)

    status = signup.complete_signup(app, visitor, FORM)

    assert (status.name, status.email, status.approval) == ("Ada Lovelace", "ada@example.com",
                                                            "approved")  # fmt: skip
    assert approvals_asked(app) == [("approve_account", "a-1"), ("approve_entitlement", "e-1")]
    account = app.store.accounts["a-1"]
    assert account.signed_up_at == app.now()
    assert account.customer_id is not None
    assert app.store.entitlements["e-1"]["state"] == ACTIVE
    assert [row["hook"] for row in app.store.outbox.values()] == [
        "customer.signed_up",
        "entitlement.active",
    ]
    assert len(app.store.changes("customer.signed_up")) == 1


def test_a_second_completion_shows_the_same_page_and_asks_google_nothing_more() -> None:
    app = FakeApp(approval_policy="signup")
    visitor = buyer(app)
    first = signup.complete_signup(app, visitor, FORM)
    asked = approvals_asked(app)

    again = signup.complete_signup(app, visitor, {**FORM, "name": "Someone Else"})

    assert again.customer_id == first.customer_id
    assert again.name == "Ada Lovelace"
    assert approvals_asked(app) == asked
    assert len(app.store.customers) == 1


def test_under_the_manual_policy_the_signup_is_recorded_and_nothing_approved() -> None:
    app = FakeApp(approval_policy="manual")
    visitor = buyer(app)

    status = signup.complete_signup(app, visitor, FORM)

    assert status.approval == "awaiting_operator"
    assert approvals_asked(app) == []
    assert app.store.accounts["a-1"].signed_up_at == app.now()


def test_an_invalid_form_records_nothing() -> None:
    app = FakeApp()
    visitor = buyer(app)

    with pytest.raises(signup.InvalidForm):
        signup.complete_signup(app, visitor, {**FORM, "email": "not an address"})

    assert app.store.accounts == {}
    assert app.store.customers == {}


def test_a_returning_human_is_linked_to_the_customer_they_already_are() -> None:
    app = FakeApp(approval_policy="manual")
    first = signup.complete_signup(app, buyer(app), FORM)
    app.procurement.add_account("a-2", signup="PENDING")

    second = signup.complete_signup(app, Visitor("a-2", user_identity="u-1"), FORM)

    assert second.customer_id == first.customer_id
    assert signup.customer_overview(app, first.customer_id) is not None
