"""`marketplace-saas listen` as a real process: SIGTERM finishes in-flight work; `--print`."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import sqlalchemy as sa

from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.db.models import InboxMessage
from marketplace_saas.bootstrap import Container
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.process_support import Process, backend_env
from tests.integration.backend.pubsub_support import Channel, channel_fixture, wait_for

pytestmark = pytest.mark.integration
__all__ = ["channel_fixture"]


def inbox(container: Container) -> list[InboxMessage]:
    with container.sessions() as session:
        return list(session.scalars(sa.select(InboxMessage)))


def creation(emulator: Emulator) -> dict[str, object]:
    _, entitlement = emulator.procurement.purchase(PROVIDER, "example-product", "basic")
    return next(
        p
        for p in emulator.notifications(PROVIDER)
        if p.get("eventType") == "ENTITLEMENT_CREATION_REQUESTED"
        and p["entitlement"]["id"] == entitlement.id  # type: ignore[index]
    )


def test_sigterm_lets_the_in_flight_notification_finish_then_exits_0(
    emulator: Emulator,
    make_container: ContainerFactory,
    channel: Channel,
    pubsub_env: str,
    tmp_path: Path,
) -> None:
    container = make_container(approval_policy="auto")
    payload = creation(emulator)
    # Every Procurement call takes 0.7 s: the message is surely in flight when SIGTERM arrives.
    emulator.faults.configure(FaultSettings.model_validate({"procurement": {"latencyMs": 700}}))
    env = backend_env(
        container.settings,
        PUBSUB_EMULATOR_HOST=pubsub_env,
        MARKETPLACE_SUBSCRIPTION=channel.subscription.rsplit("/", 1)[1],
    )
    with Process(["listen"], env, tmp_path, "listen") as listener:
        # `listen` syncs at start; let it finish, so the message does not race it for new rows.
        wait_for(listener.said("job.finished"), timeout=60, what="the start-up sync")
        channel.publish(payload)
        wait_for(lambda: inbox(container), timeout=30, what="the inbox row (message in flight)")
        listener.signal(signal.SIGTERM)
        code = listener.wait(timeout=60)
    assert code == 0, listener.stderr
    [row] = inbox(container)
    assert row.status == "processed", (row.status, row.last_error)
    assert channel.pull_now() == []  # it was acked before the process exited


def test_listen_print_prints_each_notification_and_processes_nothing(
    emulator: Emulator,
    container: Container,
    channel: Channel,
    pubsub_env: str,
    tmp_path: Path,
) -> None:
    payload = creation(emulator)
    env = backend_env(
        container.settings,
        PUBSUB_EMULATOR_HOST=pubsub_env,
        MARKETPLACE_SUBSCRIPTION=channel.subscription.rsplit("/", 1)[1],
    )
    with Process(["listen", "--print"], env, tmp_path, "print") as listener:
        channel.publish(payload)
        wait_for(
            lambda: str(payload["eventId"]) in listener.stdout, timeout=30, what="printed event"
        )
        listener.signal(signal.SIGINT)
        code = listener.wait(timeout=60)
    assert code == 0, listener.stderr
    assert '  "eventType": "ENTITLEMENT_CREATION_REQUESTED"' in listener.stdout
    assert inbox(container) == []
