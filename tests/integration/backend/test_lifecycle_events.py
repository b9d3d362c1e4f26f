"""Every event type of reference section 2.4, handled from the Procurement API's state."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import structlog
from structlog.testing import capture_logs

from marketplace_emulator.catalog import PlanSpec, Product
from marketplace_emulator.procurement.customer import OfferTerms
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Account, Customer, Entitlement
from marketplace_saas.bootstrap import Container
from marketplace_saas.service.procurement.inbox import Disposition, handle_message
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import (
    Feed,
    api_calls,
    encode,
    entitlement_row,
    hooks,
    inbox,
)

pytestmark = pytest.mark.integration

PRODUCT = "example-product"


@pytest.fixture
def auto(make_container: ContainerFactory) -> Container:
    """A container that approves as the codelab does, so entitlements become active."""
    return make_container(approval_policy="auto")


@pytest.fixture
def default_logging() -> Iterator[None]:
    """structlog's defaults for one test (a CLI test may have configured a level filter)."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


def _active(emulator: Emulator, container: Container, plan: str = "basic") -> tuple[Feed, str]:
    _, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, plan)
    feed = Feed(emulator, container)
    feed.deliver()
    assert entitlement_row(container, entitlement.id).service_enabled
    return feed, entitlement.id


def _event_types(delivered: list[dict[str, object]]) -> list[object]:
    return [payload.get("eventType") for payload in delivered]


def test_creation_requested_records_the_entitlement_and_its_unseen_account(
    emulator: Emulator, container: Container
) -> None:
    """ENTITLEMENT_CREATION_REQUESTED first: the entitlement and its account come from GET."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    messages = emulator.notifications(PROVIDER)
    creation = next(m for m in messages if m["eventType"] == "ENTITLEMENT_CREATION_REQUESTED")
    assert handle_message(container, encode(creation)) is Disposition.ACK
    row = entitlement_row(container, entitlement.id)
    assert (row.account_id, row.state, row.plan) == (
        account.id,
        "ENTITLEMENT_ACTIVATION_REQUESTED",
        "basic",
    )
    assert row.product == "example-product"  # the API's `product` field
    assert row.raw["name"] == f"providers/{PROVIDER}/entitlements/{entitlement.id}"
    with container.sessions() as session:
        account_row = session.get(Account, account.id)
        assert account_row is not None
        assert account_row.signup_approval == "PENDING"
    assert inbox(container, str(creation["eventId"])).status == "processed"


@pytest.mark.usefixtures("default_logging")
def test_active_turns_the_service_on_and_logs_with_the_entitlement_bound(
    emulator: Emulator, auto: Container
) -> None:
    _, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    with capture_logs() as logs:
        delivered = Feed(emulator, auto).deliver()
    assert "ENTITLEMENT_ACTIVE" in _event_types(delivered)
    row = entitlement_row(auto, entitlement.id)
    assert (row.service_enabled, row.service_plan) == (True, "basic")
    processed = [e for e in logs if e["event"] == "notification.processed"]
    assert any(e.get("entitlement_id") == entitlement.id for e in processed)
    assert all("event_id" in e for e in processed)


def test_plan_change_cancelled_keeps_the_old_plan(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="auto", plan_change_policy="manual")
    feed, entitlement_id = _active(emulator, container)
    emulator.procurement.change_plan(PROVIDER, entitlement_id, "pro")
    feed.deliver()
    assert entitlement_row(container, entitlement_id).new_pending_plan == "pro"
    emulator.procurement.cancel_plan_change(PROVIDER, entitlement_id)
    assert _event_types(feed.deliver()) == ["ENTITLEMENT_PLAN_CHANGE_CANCELLED"]
    row = entitlement_row(container, entitlement_id)
    assert (row.state, row.new_pending_plan, row.service_plan) == (
        "ENTITLEMENT_ACTIVE",
        None,
        "basic",
    )


def test_plan_change_at_term_end_waits_in_pending_plan_change(
    emulator: Emulator, auto: Container
) -> None:
    """approvePlanChange on a term-end product: PENDING_PLAN_CHANGE, then PLAN_CHANGED."""
    emulator.catalog.put(
        PROVIDER,
        "term-product",
        Product(
            service_name="term.endpoints.sandbox.cloud.goog",
            plan_change="termEnd",
            account_notifications="creation",
            plans={"basic": PlanSpec(), "pro": PlanSpec()},
        ),
    )
    emulator.procurement.purchase(PROVIDER, "term-product", "basic")
    feed = Feed(emulator, auto)
    feed.deliver()
    entitlement_id = emulator.procurement.entitlements(PROVIDER)[0].id
    emulator.procurement.change_plan(PROVIDER, entitlement_id, "pro")
    feed.deliver()
    row = entitlement_row(auto, entitlement_id)
    assert (row.state, row.new_pending_plan, row.service_plan) == (
        "ENTITLEMENT_PENDING_PLAN_CHANGE",
        "pro",
        "basic",
    )
    emulator.advance_clock(31 * 86400)
    assert "ENTITLEMENT_PLAN_CHANGED" in _event_types(feed.deliver())
    row = entitlement_row(auto, entitlement_id)
    assert (row.state, row.plan, row.service_plan) == ("ENTITLEMENT_ACTIVE", "pro", "pro")


def test_pending_cancellation_keeps_serving_and_a_revert_is_recorded(
    emulator: Emulator, auto: Container
) -> None:
    feed, entitlement_id = _active(emulator, auto)
    emulator.procurement.cancel(PROVIDER, entitlement_id, at_term_end=True)
    assert _event_types(feed.deliver()) == ["ENTITLEMENT_PENDING_CANCELLATION"]
    row = entitlement_row(auto, entitlement_id)
    assert (row.state, row.service_enabled) == ("ENTITLEMENT_PENDING_CANCELLATION", True)
    assert row.subscription_end_time is not None

    emulator.procurement.revert_cancellation(PROVIDER, entitlement_id)
    assert _event_types(feed.deliver()) == ["ENTITLEMENT_CANCELLATION_REVERTED"]
    row = entitlement_row(auto, entitlement_id)
    assert (row.state, row.service_enabled) == ("ENTITLEMENT_ACTIVE", True)
    assert hooks(auto, entitlement_id) == [
        "entitlement.active",
        "entitlement.pending_cancellation",
        "entitlement.cancellation_reverted",
    ]


def test_cancelled_turns_the_service_off_and_deleted_marks_it_deleted(
    emulator: Emulator, auto: Container
) -> None:
    feed, entitlement_id = _active(emulator, auto)
    emulator.procurement.cancel(PROVIDER, entitlement_id, at_term_end=False)
    assert _event_types(feed.deliver()) == ["ENTITLEMENT_CANCELLED"]
    row = entitlement_row(auto, entitlement_id)
    assert (row.state, row.service_enabled, row.cancellation_reason) == (
        "ENTITLEMENT_CANCELLED",
        False,
        "user-cancelled",
    )
    assert row.cancelled_at is not None
    assert row.deleted_at is None

    emulator.procurement.delete_entitlement(PROVIDER, entitlement_id)
    assert _event_types(feed.deliver()) == ["ENTITLEMENT_DELETED"]
    row = entitlement_row(auto, entitlement_id)
    assert row.deleted_at is not None
    assert row.state == "ENTITLEMENT_CANCELLED"  # kept for billing
    assert hooks(auto, entitlement_id) == ["entitlement.active", "entitlement.cancelled"]


def test_renewed_refreshes_the_term_and_raises_its_hook(
    emulator: Emulator, auto: Container
) -> None:
    feed, entitlement_id = _active(emulator, auto)
    before = entitlement_row(auto, entitlement_id).offer_end_time
    emulator.advance_clock(3600)
    emulator.procurement.renew(PROVIDER, entitlement_id)
    assert _event_types(feed.deliver()) == ["ENTITLEMENT_RENEWED"]
    row = entitlement_row(auto, entitlement_id)
    assert before is not None
    assert row.offer_end_time is not None
    assert row.offer_end_time > before
    assert hooks(auto, entitlement_id)[-1] == "entitlement.renewed"


def test_offer_ended_records_the_new_offer(emulator: Emulator, auto: Container) -> None:
    feed, entitlement_id = _active(emulator, auto)
    old_offer = entitlement_row(auto, entitlement_id).offer
    emulator.advance_clock(60)
    emulator.procurement.end_offer(PROVIDER, entitlement_id)
    assert _event_types(feed.deliver()) == ["ENTITLEMENT_OFFER_ENDED"]
    row = entitlement_row(auto, entitlement_id)
    assert row.offer != old_offer
    assert row.service_enabled
    assert hooks(auto, entitlement_id)[-1] == "entitlement.offer_ended"


def test_offer_accepted_on_an_auto_approval_product(
    emulator: Emulator, container: Container
) -> None:
    """ENTITLEMENT_OFFER_ACCEPTED (no approval needed), then ENTITLEMENT_ACTIVE."""
    emulator.catalog.put(
        PROVIDER,
        "auto-product",
        Product(
            service_name="auto.endpoints.sandbox.cloud.goog",
            auto_approve=True,
            account_notifications="creation",
            plans={"basic": PlanSpec()},
        ),
    )
    start = datetime.now(UTC) + timedelta(days=2)
    _, entitlement = emulator.procurement.purchase(
        PROVIDER, "auto-product", "basic", offer=OfferTerms(start_time=start)
    )
    feed = Feed(emulator, container)
    assert _event_types(feed.deliver()) == ["ACCOUNT_ACTIVE", "ENTITLEMENT_OFFER_ACCEPTED"]
    row = entitlement_row(container, entitlement.id)
    assert (row.state, row.service_enabled) == ("ENTITLEMENT_ACTIVATION_REQUESTED", False)
    assert row.new_offer_start_time is not None
    assert api_calls(container, "approve_entitlement") == 0
    emulator.advance_clock(3 * 86400)
    assert _event_types(feed.deliver()) == ["ENTITLEMENT_ACTIVE"]
    assert entitlement_row(container, entitlement.id).service_enabled


def test_account_deleted_erases_personal_data_and_keeps_billing_records(
    emulator: Emulator, auto: Container
) -> None:
    feed, entitlement_id = _active(emulator, auto)
    account_id = entitlement_row(auto, entitlement_id).account_id
    with auto.sessions.begin() as session:
        session.add(
            Customer(
                id="c-1",
                name="Ada Lovelace",
                email="ada@example.com",
                company="Engines",
                user_identity="g-123",
                signup_data={"phone": "1"},
            )
        )
        session.flush()
        account = session.get(Account, account_id)
        assert account is not None
        account.customer_id = "c-1"
    emulator.procurement.delete_account(PROVIDER, account_id)
    delivered = _event_types(feed.deliver())
    assert delivered == ["ENTITLEMENT_CANCELLED", "ENTITLEMENT_DELETED", "ACCOUNT_DELETED"]
    with auto.sessions() as session:
        customer = session.get(Customer, "c-1")
        account = session.get(Account, account_id)
        entitlement = session.get(Entitlement, entitlement_id)
    assert customer is not None
    assert (customer.name, customer.email, customer.company, customer.user_identity) == (
        None,
        None,
        None,
        None,
    )
    assert customer.signup_data == {}
    assert customer.erased_at is not None
    assert account is not None
    assert account.deleted_at is not None
    assert account.customer_id == "c-1"
    assert entitlement is not None
    assert entitlement.usage_reporting_id  # what billing needs stays
    assert hooks(auto, account_id) == ["account.deleted"]


def test_account_message_without_event_type_is_an_account_message(
    emulator: Emulator, container: Container
) -> None:
    """Google's documented account payload has no eventType: dispatch on the 'account' key."""
    account, _ = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    message = {"eventId": "evt-no-type", "providerId": PROVIDER, "account": {"id": account.id}}
    assert handle_message(container, encode(message)) is Disposition.ACK
    assert inbox(container, "evt-no-type").status == "processed"
    with container.sessions() as session:
        assert session.get(Account, account.id) is not None


@pytest.mark.parametrize("event_type", ["ENTITLEMENT_CANCELLING", "ACCOUNT_CREATION_REQUESTED"])
def test_rare_event_types_refresh_from_the_api(
    emulator: Emulator, container: Container, event_type: str
) -> None:
    """Types the emulator never sends (deprecated or undocumented) are still handled by GET."""
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    kind, subject = (
        ("account", account.id)
        if event_type.startswith("ACCOUNT")
        else ("entitlement", entitlement.id)
    )
    message = {
        "eventId": f"evt-{event_type}",
        "eventType": event_type,
        "providerId": PROVIDER,
        kind: {"id": subject},
    }
    assert handle_message(container, encode(message)) is Disposition.ACK
    assert inbox(container, f"evt-{event_type}").status == "processed"
    assert api_calls(container, f"get_{kind}") >= 1


def test_unknown_event_types_are_recorded_as_ignored_and_acked(
    emulator: Emulator, container: Container
) -> None:
    message = {
        "eventId": "evt-new",
        "eventType": "ENTITLEMENT_TELEPORTED",
        "providerId": PROVIDER,
        "entitlement": {"id": str(uuid.uuid4())},
    }
    assert handle_message(container, encode(message)) is Disposition.ACK
    row = inbox(container, "evt-new")
    assert row.status == "ignored"
    assert row.last_error == "unknown eventType ENTITLEMENT_TELEPORTED"
    assert api_calls(container) == 0


def test_an_entitlement_of_an_unseen_account_and_several_per_product(
    emulator: Emulator, auto: Container
) -> None:
    """Two orders of one product by one account are two entitlements, each with its own state."""
    account, first = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    _, second = emulator.procurement.purchase(PROVIDER, PRODUCT, "pro", account_id=account.id)
    Feed(emulator, auto).deliver()
    with auto.sessions() as session:
        rows = session.scalars(
            sa.select(Entitlement)
            .where(Entitlement.account_id == account.id)
            .order_by(Entitlement.plan)
        ).all()
    assert [(r.id, r.service_plan, r.service_enabled) for r in rows] == [
        (first.id, "basic", True),
        (second.id, "pro", True),
    ]
