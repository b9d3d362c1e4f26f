"""Hooks from the real lifecycle (through the emulator), and provision before approve."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Account, HookOutbox
from marketplace_saas.bootstrap import Container
from marketplace_saas.domain.hooks import RetryPolicy
from marketplace_saas.service.hooks.dispatch import Dispatcher, build_dispatcher
from marketplace_saas.service.procurement import automatic
from marketplace_saas.service.procurement.provisioning import SETTING_UP_MESSAGE
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.hooks_support import SECRET, WebhookServer, webhook_server
from tests.integration.backend.lifecycle_support import Feed

pytestmark = pytest.mark.integration

PRODUCT = "example-product"
NO_WAIT = RetryPolicy(max_attempts=5, base_seconds=0.0)


def outbox(container: Container) -> list[HookOutbox]:
    with container.sessions() as session:
        return list(session.scalars(sa.select(HookOutbox).order_by(HookOutbox.id)))


def dispatcher(container: Container) -> Dispatcher:
    made = build_dispatcher(container, policy=NO_WAIT)
    assert made is not None
    return made


def sign_up(container: Container, account_id: str) -> None:
    with container.sessions.begin() as session:
        account = session.get(Account, account_id)
        assert account is not None
        account.signed_up_at = datetime.now(UTC)


def test_lifecycle_hooks_carry_typed_payloads_and_reach_the_receiver_in_order(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """Purchase, plan change, cancellation, account deletion: what the provider's app is told."""
    with webhook_server() as server:
        container = make_container(
            approval_policy="auto", hook_receivers=server.url, hook_webhook_secret=SECRET
        )
        feed = Feed(emulator, container)
        account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
        feed.deliver()
        emulator.procurement.change_plan(PROVIDER, entitlement.id, "pro")
        feed.deliver()
        emulator.procurement.cancel(PROVIDER, entitlement.id, at_term_end=False)
        feed.deliver()
        emulator.procurement.delete_account(PROVIDER, account.id)
        feed.deliver()
        result = dispatcher(container).drain()
    assert (result.failed, result.dead) == ([], [])
    ours = [item for item in server.received if item.ordering_key == entitlement.id]
    assert [item.hook for item in ours] == [
        "entitlement.active",
        "entitlement.plan_changed",
        "entitlement.cancelled",
    ]
    active, changed, cancelled = (item.event["data"] for item in ours)
    assert active["entitlement"]["id"] == entitlement.id
    assert active["entitlement"]["state"] == "ENTITLEMENT_ACTIVE"
    assert active["entitlement"]["usage_reporting_id"]
    assert active["account"]["id"] == account.id
    assert (active["plan"], active["previous_plan"]) == ("basic", None)
    assert (changed["plan"], changed["previous_plan"]) == ("pro", "basic")
    assert cancelled["reason"] == "user-cancelled"
    [deleted] = [item for item in server.received if item.hook == "account.deleted"]
    assert deleted.event["data"]["account"]["id"] == account.id


def test_provision_before_approve_approves_only_after_the_provisioning_hook_succeeded(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    status = {"code": 503}
    server = WebhookServer(behaviour=lambda _event: (status["code"], 0.0))
    with webhook_server(server):
        container = make_container(
            provision_before_approve=True, hook_receivers=server.url, hook_webhook_secret=SECRET
        )
        feed = Feed(emulator, container)
        account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
        feed.deliver()
        sign_up(container, account.id)
        results = automatic.approve_after_signup(container, account.id, actor="signup")
        assert [r.outcome for r in results] == ["approved", "provisioning"]
        # Twice (the customer clicks again): still one provisioning hook.
        automatic.approve_after_signup(container, account.id, actor="signup")
        waiting = emulator.procurement.get_entitlement(PROVIDER, entitlement.id)
        assert waiting.state == "ENTITLEMENT_ACTIVATION_REQUESTED"
        assert waiting.message_to_user == SETTING_UP_MESSAGE
        [queued] = outbox(container)
        assert (queued.hook, queued.payload["provision_before_approve"]) == (
            "entitlement.active",
            True,
        )

        worker = dispatcher(container)
        assert worker.run_once().failed == [queued.id]  # the provider's app is down
        assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
            "ENTITLEMENT_ACTIVATION_REQUESTED"
        )
        status["code"] = 200
        assert worker.run_once().delivered == [queued.id]
        assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
            "ENTITLEMENT_ACTIVE"
        )
        feed.deliver()
        worker.drain()
    first: dict[str, Any] = server.received[0].event["data"]
    assert first["provision_before_approve"] is True
    assert first["entitlement"]["state"] == "ENTITLEMENT_ACTIVATION_REQUESTED"
    # Google's ENTITLEMENT_ACTIVE then raises the usual hook, a no-op for an idempotent app.
    assert [item.hook for item in server.received] == ["entitlement.active"] * 2
    assert server.received[1].event["data"]["entitlement"]["state"] == "ENTITLEMENT_ACTIVE"


def test_without_the_policy_the_approval_does_not_wait_for_any_hook(
    emulator: Emulator, container: Container
) -> None:
    assert not container.settings.provision_before_approve
    account, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    Feed(emulator, container).deliver()
    sign_up(container, account.id)
    results = automatic.approve_after_signup(container, account.id, actor="signup")
    assert [r.outcome for r in results] == ["approved", "approved"]
    assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).message_to_user == ""


def test_the_lifecycle_under_auto_approval_also_provisions_before_approving(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """APPROVAL_POLICY=auto: ENTITLEMENT_CREATION_REQUESTED queues the hook instead of approving."""
    with webhook_server() as server:
        container = make_container(
            approval_policy="auto",
            provision_before_approve=True,
            hook_receivers=server.url,
            hook_webhook_secret=SECRET,
        )
        feed = Feed(emulator, container)
        _, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
        feed.deliver()
        feed.deliver()  # a redelivered or re-synced notification queues nothing more
        waiting = emulator.procurement.get_entitlement(PROVIDER, entitlement.id)
        assert (waiting.state, waiting.message_to_user) == (
            "ENTITLEMENT_ACTIVATION_REQUESTED",
            SETTING_UP_MESSAGE,
        )
        [queued] = outbox(container)
        assert queued.payload["provision_before_approve"] is True
        assert dispatcher(container).run_once().delivered == [queued.id]
        assert emulator.procurement.get_entitlement(PROVIDER, entitlement.id).state == (
            "ENTITLEMENT_ACTIVE"
        )
        feed.deliver()
    assert [item.hook for item in outbox(container)] == ["entitlement.active"] * 2
