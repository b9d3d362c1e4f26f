"""The sign-up flow over HTTP against the emulator: form, customer, approvals, login, retries."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Account, AuditLog, Customer, HookOutbox
from marketplace_saas.adapters.procurement_errors import TransientProcurementError
from marketplace_saas.bootstrap import Container
from marketplace_saas.domain.entitlements import AccountView
from marketplace_saas.domain.signup import Visitor
from marketplace_saas.service import signup as service
from marketplace_saas.service.procurement import records
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.signup_support import (
    FORM,
    client,
    csrf_of,
    emulator_token,
    signup_container,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def app_container(make_container: ContainerFactory, emulator_url: str) -> Container:
    return signup_container(make_container, emulator_url)


def start(http: TestClient, token: str) -> str:
    """POST the token as Google does; return the form's CSRF token."""
    response = http.post("/signup", data={"x-gcp-marketplace-token": token})
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


def submit(http: TestClient, csrf: str, **fields: str) -> Any:
    return http.post("/signup/complete", data={**FORM, **fields, "csrf_token": csrf})


def api_calls(container: Container, action: str) -> int:
    with container.sessions() as session:
        return int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.kind == "api_call", AuditLog.action == action)
            )
            or 0
        )


def signed_up_hooks(session: Session) -> int:
    query = sa.select(sa.func.count()).where(HookOutbox.hook == "customer.signed_up")
    return int(session.scalar(query) or 0)


def test_signup_shows_the_purchase_then_creates_the_customer_and_approves_everything(
    emulator: Emulator, app_container: Container
) -> None:
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "pro")
    http = client(app_container)
    response = http.post("/signup", data={"x-gcp-marketplace-token": emulator_token(account.id)})
    assert response.status_code == 200
    assert "example-product" in response.text
    assert "pro" in response.text
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert account.id not in response.text, "the account travels in the session, not the page"

    done = submit(http, csrf_of(response.text))
    assert (done.status_code, done.headers["location"]) == (303, "/signup/done")
    page = http.get("/signup/done")
    assert page.status_code == 200
    assert "You're all set, Ada Lovelace" in page.text
    assert "ada@example.com" in page.text

    assert emulator.procurement.get_account(PROVIDER, account.id).signup_state == "APPROVED"
    assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
        "ENTITLEMENT_ACTIVE"
    )
    with app_container.sessions() as session:
        row = session.get(Account, account.id)
        assert row is not None
        assert row.signed_up_at is not None
        customer = session.get(Customer, row.customer_id)
        assert customer is not None
        assert (customer.name, customer.email, customer.company) == (
            "Ada Lovelace",
            "ada@example.com",
            "Analytical Engines",
        )
        assert customer.user_identity == f"user-of-{account.id}"
        assert customer.signup_data["accounts"][account.id]["approval"]["outcome"] == "done"
        hook = session.scalars(
            sa.select(HookOutbox).where(HookOutbox.hook == "customer.signed_up")
        ).one()
        assert hook.payload["customer"]["email"] == "ada@example.com"
        assert hook.payload["account"]["id"] == account.id


def test_orders_from_the_token_are_stored_with_the_signup_and_its_hook(
    emulator: Emulator, app_container: Container
) -> None:
    account, _ = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    token = emulator_token(
        account.id,
        google={"user_identity": "u-orders", "orders": ["order-1"]},
        orders=[{"orderId": "order-2"}],
    )
    http = client(app_container)
    assert submit(http, start(http, token)).status_code == 303
    with app_container.sessions() as session:
        customer = session.scalars(sa.select(Customer)).one()
        assert customer.signup_data["accounts"][account.id]["orders"] == ["order-1", "order-2"]
        hook = session.scalars(
            sa.select(HookOutbox).where(HookOutbox.hook == "customer.signed_up")
        ).one()
        assert hook.payload["extra"]["orders"] == ["order-1", "order-2"]


def test_clicking_twice_and_reloading_approves_once_and_shows_the_same_page(
    emulator: Emulator, app_container: Container
) -> None:
    account, _ = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    http = client(app_container)
    csrf = start(http, emulator_token(account.id))
    assert submit(http, csrf).status_code == 303
    first = http.get("/signup/done").text
    assert submit(http, csrf, name="Someone Else").status_code == 303
    assert http.get("/signup/done").text == first
    again = http.post("/signup", data={"x-gcp-marketplace-token": emulator_token(account.id)})
    assert (again.status_code, again.headers["location"]) == (303, "/signup/done")
    assert http.get("/signup/done").text == first
    assert api_calls(app_container, "approve_account") == 1
    assert api_calls(app_container, "approve_entitlement") == 1
    with app_container.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Customer)) == 1
        assert signed_up_hooks(session) == 1


@pytest.mark.parametrize("account_recorded", [False, True], ids=["new-account", "known-account"])
def test_two_racing_submissions_create_one_customer_and_approve_once(
    emulator: Emulator, app_container: Container, account_recorded: bool
) -> None:
    """Two threads complete the same sign-up at the same moment: one claim, one approval."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "pro")
    if account_recorded:  # the lifecycle already stored the account from its notification
        view = AccountView.from_api(app_container.procurement.get_account(account.id) or {})
        with app_container.unit_of_work() as uow:
            ctx = records.Context(actor="listener", now=app_container.now())
            records.apply_account(uow, provider_id=PROVIDER, view=view, ctx=ctx)
    visitor = Visitor(account.id, user_identity="u-race")
    barrier = threading.Barrier(2)
    results: list[object] = []

    def run(name: str) -> None:
        barrier.wait()
        try:
            results.append(service.complete_signup(app_container, visitor, {**FORM, "name": name}))
        except Exception as exc:  # recorded and asserted below
            results.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("Tab One", "Tab Two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2
    assert all(isinstance(r, service.SignupStatus) for r in results), results
    assert results[0] == results[1], "both tabs show the same result"
    assert api_calls(app_container, "approve_account") == 1
    assert api_calls(app_container, "approve_entitlement") == 1
    assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
        "ENTITLEMENT_ACTIVE"
    )
    with app_container.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Customer)) == 1
        assert signed_up_hooks(session) == 1


def test_manual_policy_records_the_signup_and_leaves_approval_to_an_operator(
    emulator: Emulator, make_container: ContainerFactory, emulator_url: str
) -> None:
    container = signup_container(make_container, emulator_url, approval_policy="manual")
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    http = client(container)
    assert submit(http, start(http, emulator_token(account.id))).status_code == 303
    page = http.get("/signup/done").text
    assert "Our team reviews every new subscription" in page
    assert emulator.procurement.get_account(PROVIDER, account.id).signup_state == "PENDING"
    assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
        "ENTITLEMENT_ACTIVATION_REQUESTED"
    )
    assert api_calls(container, "approve_account") == 0


def test_a_returning_human_with_a_new_account_is_linked_to_the_same_customer(
    emulator: Emulator, app_container: Container
) -> None:
    first, _ = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    second, _ = emulator.procurement.purchase(PROVIDER, "example-product", "pro")
    identity = {"user_identity": "the-same-human"}
    http = client(app_container)
    submit(http, start(http, emulator_token(first.id, google=identity)))
    http = client(app_container)
    form = http.post(
        "/signup", data={"x-gcp-marketplace-token": emulator_token(second.id, google=identity)}
    )
    assert 'value="ada@example.com"' in form.text, "the form is prefilled for a known human"
    submit(http, csrf_of(form.text))
    with app_container.sessions() as session:
        customers = session.scalars(sa.select(Customer)).all()
        assert len(customers) == 1
        linked = session.scalars(sa.select(Account.customer_id)).all()
        assert linked == [customers[0].id, customers[0].id]


def test_login_sends_a_signed_up_customer_to_the_product_and_others_to_signup(
    emulator: Emulator, make_container: ContainerFactory, emulator_url: str
) -> None:
    container = signup_container(make_container, emulator_url, product_url="/welcome")
    account, _ = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    http = client(container)
    form = http.post("/login", data={"x-gcp-marketplace-token": emulator_token(account.id)})
    assert form.status_code == 200
    assert "Complete your sign-up" in form.text
    submit(http, csrf_of(form.text))

    http = client(container)
    login = http.post("/login", data={"x-gcp-marketplace-token": emulator_token(account.id)})
    assert (login.status_code, login.headers["location"]) == (303, "/welcome")
    welcome = http.get("/welcome")
    assert welcome.status_code == 200
    assert "Welcome, Ada Lovelace" in welcome.text


def test_a_failed_approval_keeps_the_signup_and_a_later_visit_retries_it(
    emulator: Emulator, make_container: ContainerFactory, emulator_url: str
) -> None:
    """Google unavailable at approval time: saved, 'confirming'; a visit a minute later approves."""
    container = signup_container(make_container, emulator_url)
    real = container.procurement
    account, _ = emulator.procurement.purchase(PROVIDER, "example-product", "basic")

    class Flaky:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def approve_account(self, *args: Any, **kwargs: Any) -> None:
            raise TransientProcurementError("unavailable", status_code=503)

    container.procurement = Flaky()  # type: ignore[assignment]
    http = client(container)
    assert submit(http, start(http, emulator_token(account.id))).status_code == 303
    assert "We're confirming it with Google Cloud Marketplace" in http.get("/signup/done").text
    assert emulator.procurement.get_account(PROVIDER, account.id).signup_state == "PENDING"

    container.procurement = real
    later = container.now() + service.RETRY_APPROVAL_AFTER
    container._clock = lambda: later
    again = http.post("/signup", data={"x-gcp-marketplace-token": emulator_token(account.id)})
    assert again.status_code == 303
    assert emulator.procurement.get_account(PROVIDER, account.id).signup_state == "APPROVED"
    assert "You're all set" in http.get("/signup/done").text
