"""The listener through the real Pub/Sub emulator and the Marketplace emulator.

Notifications are taken from what the Marketplace emulator recorded and published by the test to a
fresh topic, so each test decides what is delivered, how often and when.
"""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import Entitlement, InboxMessage
from marketplace_saas.bootstrap import Container
from marketplace_saas.entrypoints.listener import Listener, printing_callback, processing_callback
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.pubsub_support import Channel, channel_fixture, wait_for

pytestmark = pytest.mark.integration
__all__ = ["channel_fixture"]

OUTAGE = FaultSettings.model_validate({"procurement": {"errorRate": 1.0, "statuses": [503]}})


def inbox_row(container: Container, event_id: str) -> InboxMessage | None:
    with container.sessions() as session:
        return session.scalar(sa.select(InboxMessage).where(InboxMessage.event_id == event_id))


def purchase(emulator: Emulator) -> tuple[str, str]:
    account, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    return account.id, entitlement.id


def notification(emulator: Emulator, event_type: str, entitlement_id: str) -> dict[str, Any]:
    for payload in emulator.notifications(PROVIDER):
        entitlement = payload.get("entitlement") or {}
        if payload.get("eventType") == event_type and entitlement.get("id") == entitlement_id:
            return payload
    raise AssertionError(f"no {event_type} for {entitlement_id}")


class Recorder:
    """Wraps each message so the test sees, at the moment of ack/nack, what was committed."""

    def __init__(self, container: Container, inner: Any) -> None:
        self.container = container
        self.inner = inner
        self.acks: list[tuple[str, str | None, str | None]] = []
        self.nacks = 0

    def __call__(self, message: Any) -> None:
        recorder = self

        class Spy:
            data = message.data
            message_id = message.message_id

            def ack(self) -> None:
                event_id = json.loads(message.data).get("eventId", "?")
                row = inbox_row(recorder.container, event_id)
                entitlement_id = (json.loads(message.data).get("entitlement") or {}).get("id")
                with recorder.container.sessions() as session:
                    entitlement = (
                        session.get(Entitlement, entitlement_id) if entitlement_id else None
                    )
                recorder.acks.append(
                    (
                        event_id,
                        row.status if row else None,
                        entitlement.state if entitlement else None,
                    )
                )
                message.ack()

            def nack(self) -> None:
                recorder.nacks += 1
                message.nack()

        self.inner(Spy())


def test_a_notification_is_acked_only_after_its_effects_are_committed(
    emulator: Emulator, make_container: ContainerFactory, channel: Channel
) -> None:
    container = make_container(approval_policy="auto")
    account_id, entitlement_id = purchase(emulator)
    created = notification(emulator, "ENTITLEMENT_CREATION_REQUESTED", entitlement_id)
    recorder = Recorder(container, processing_callback(container))
    listener = Listener(container.settings, recorder, subscription=channel.subscription)
    listener.start()
    try:
        channel.publish(created)
        wait_for(lambda: recorder.acks, what="the ack")
    finally:
        listener.stop()
    [(event_id, status, state)] = recorder.acks
    assert event_id == created["eventId"]
    assert status == "processed"  # the inbox row was committed before the ack
    assert state is not None  # and so was the entitlement
    assert (
        emulator.procurement.get_entitlement(PROVIDER, entitlement_id).state == "ENTITLEMENT_ACTIVE"
    )
    assert channel.pull_now() == []  # acked: Pub/Sub will not deliver it again
    assert account_id


def test_a_transient_failure_is_nacked_and_the_redelivery_is_processed(
    emulator: Emulator, make_container: ContainerFactory, channel: Channel
) -> None:
    container = make_container(approval_policy="auto", max_delivery_attempts=100)
    _, entitlement_id = purchase(emulator)
    created = notification(emulator, "ENTITLEMENT_CREATION_REQUESTED", entitlement_id)
    emulator.faults.configure(OUTAGE)
    recorder = Recorder(container, processing_callback(container))
    listener = Listener(container.settings, recorder, subscription=channel.subscription)
    listener.start()
    try:
        channel.publish(created)
        wait_for(lambda: recorder.nacks >= 2, what="two nacks (a redelivery)")
        row = inbox_row(container, created["eventId"])
        assert row is not None
        assert row.status == "retrying"
        assert recorder.acks == []
        emulator.faults.clear()
        wait_for(lambda: recorder.acks, what="the ack after the outage")
    finally:
        listener.stop()
    row = inbox_row(container, created["eventId"])
    assert row is not None
    assert row.status == "processed"
    assert row.deliveries >= 3
    assert (
        emulator.procurement.get_entitlement(PROVIDER, entitlement_id).state == "ENTITLEMENT_ACTIVE"
    )


def test_a_message_that_keeps_failing_is_parked_acked_and_the_listener_goes_on(
    emulator: Emulator, make_container: ContainerFactory, channel: Channel
) -> None:
    container = make_container(approval_policy="auto", max_delivery_attempts=3)
    _, first = purchase(emulator)
    _, second = purchase(emulator)
    poison = notification(emulator, "ENTITLEMENT_CREATION_REQUESTED", first)
    healthy = notification(emulator, "ENTITLEMENT_CREATION_REQUESTED", second)
    emulator.faults.configure(OUTAGE)
    listener = Listener(
        container.settings, processing_callback(container), subscription=channel.subscription
    )
    listener.start()
    try:
        channel.publish(poison)
        parked = wait_for(
            lambda: (r := inbox_row(container, poison["eventId"])) and r.status == "parked" and r,
            what="the poison message parked",
        )
        assert parked.attempts == 3
        assert parked.last_error
        emulator.faults.clear()
        channel.publish(b"this is not a notification")
        channel.publish(healthy)
        wait_for(
            lambda: (r := inbox_row(container, healthy["eventId"])) and r.status == "processed",
            what="the next message processed",
        )
    finally:
        listener.stop()
    assert channel.pull_now() == []  # the parked and the invalid message were acked too
    with container.sessions() as session:
        invalid = session.scalars(
            sa.select(InboxMessage).where(InboxMessage.status == "invalid")
        ).all()
    assert len(invalid) == 1
    assert (
        emulator.procurement.get_entitlement(PROVIDER, first).state
        == "ENTITLEMENT_ACTIVATION_REQUESTED"
    )


def test_stop_nacks_nothing_in_flight_it_finishes_the_message_first(
    emulator: Emulator, make_container: ContainerFactory, channel: Channel
) -> None:
    """stop() returns after the in-flight message was processed and acked (slow API calls)."""
    container = make_container(approval_policy="auto")
    _, entitlement_id = purchase(emulator)
    created = notification(emulator, "ENTITLEMENT_CREATION_REQUESTED", entitlement_id)
    emulator.faults.configure(FaultSettings.model_validate({"procurement": {"latencyMs": 300}}))
    recorder = Recorder(container, processing_callback(container))
    started: list[bool] = []

    def callback(message: Any) -> None:
        started.append(True)
        recorder(message)

    listener = Listener(container.settings, callback, subscription=channel.subscription)
    listener.start()
    channel.publish(created)
    wait_for(lambda: started, what="the message in flight")
    listener.stop()
    assert [a[0] for a in recorder.acks] == [created["eventId"]]
    assert [a[1] for a in recorder.acks] == ["processed"]
    assert channel.pull_now() == []


def test_print_mode_prints_pretty_json_and_neither_acks_nor_nacks() -> None:
    out = io.StringIO()
    calls: list[str] = []

    class Message:
        data = b'{"eventId": "e-1", "eventType": "ENTITLEMENT_ACTIVE", "entitlement": {"id": "x"}}'
        message_id = "m-7"

        def ack(self) -> None:
            calls.append("ack")

        def nack(self) -> None:
            calls.append("nack")

    printing_callback(out)(Message())
    text = out.getvalue()
    assert "# messageId m-7" in text
    assert json.loads(text.split("\n", 1)[1]) == json.loads(Message.data)
    assert '\n  "eventId": "e-1"' in text  # indented
    assert calls == []


def test_a_worker_that_never_returns_is_logged_once_with_its_stack(
    container: Container, channel: Channel
) -> None:
    """A message held by a worker past `stuck_seconds` is still leased, so Pub/Sub gives it to
    nobody else: the listener says so once, with what the worker is waiting for."""
    release = threading.Event()
    started: list[str] = []

    def waits_for_a_lock_that_never_comes(message: Any) -> None:
        started.append(message.message_id)
        release.wait(30)
        message.ack()

    listener = Listener(
        container.settings,
        waits_for_a_lock_that_never_comes,
        subscription=channel.subscription,
        stuck_seconds=0.5,
    )
    with capture_logs() as logs:
        listener.start()
        try:
            channel.publish({"eventId": "stuck-1", "eventType": "ENTITLEMENT_ACTIVE"})
            wait_for(lambda: started, what="the message in flight")
            stuck = wait_for(
                lambda: [e for e in logs if e["event"] == "listener.message_stuck"],
                what="the stuck message logged",
                timeout=30,
            )
            time.sleep(6)  # a later lease round does not log it again
            again = [e for e in logs if e["event"] == "listener.message_stuck"]
        finally:
            release.set()
            listener.stop()

    assert len(again) == 1
    [entry] = stuck
    assert entry["message_id"] == started[0]
    assert entry["seconds"] >= 0.5
    assert "waits_for_a_lock_that_never_comes" in entry["stack"]
    assert "release.wait(30)" in entry["stack"]
