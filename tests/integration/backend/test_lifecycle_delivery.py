"""What `handle_message` does with bad input, repeats, old news, outages and bugs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marketplace_emulator.faults import FaultSettings, ProcurementFaults
from marketplace_emulator.server import Emulator
from marketplace_saas.adapters.procurement_errors import TransientProcurementError
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.domain.notifications import digest_event_id
from marketplace_saas.service.procurement.inbox import Disposition, handle_message, replay
from tests.integration.backend.conftest import PROVIDER, ContainerFactory
from tests.integration.backend.lifecycle_support import (
    Feed,
    api_calls,
    encode,
    entitlement_row,
    inbox,
)

pytestmark = pytest.mark.integration

PRODUCT = "example-product"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe not json", "not UTF-8 JSON"),
        (b"[1, 2]", "not an object"),
        (encode({"eventType": "ENTITLEMENT_ACTIVE", "providerId": PROVIDER}), "no eventId"),
        (
            encode({"eventId": "e1", "providerId": "SOMEONE-ELSE", "entitlement": {"id": "x"}}),
            "not ours",
        ),
        (encode({"eventId": "e2", "providerId": PROVIDER}), "exactly one of"),
        (encode({"eventId": "e3", "providerId": PROVIDER, "entitlement": {}}), "has no id"),
        (
            encode(
                {
                    "eventId": "e4",
                    "providerId": PROVIDER,
                    "account": {"id": "a", "updateTime": "yesterday"},
                }
            ),
            "not an RFC 3339 time",
        ),
        (b'{"eventId": "big", "pad": "' + b"x" * 70_000 + b'"}', "over the 65536-byte limit"),
    ],
)
def test_invalid_messages_are_recorded_with_the_reason_and_acked(
    container: Container, data: bytes, reason: str
) -> None:
    assert handle_message(container, data, message_id="m-1") is Disposition.ACK
    row = inbox(container, digest_event_id(data))
    assert row.status == "invalid"
    assert row.last_error is not None
    assert reason in row.last_error
    assert row.message_id == "m-1"
    assert len(row.payload) <= 65536
    assert api_calls(container) == 0


def test_an_invalid_message_delivered_again_is_counted_not_duplicated(container: Container) -> None:
    data = b"not json"
    for _ in range(3):
        assert handle_message(container, data) is Disposition.ACK
    assert inbox(container, digest_event_id(data)).deliveries == 3


def test_a_duplicate_delivery_is_acked_without_processing_again(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="auto")
    emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    delivered = Feed(emulator, container).deliver()
    calls = api_calls(container)
    for payload in delivered:
        assert handle_message(container, encode(payload)) is Disposition.ACK
    assert api_calls(container) == calls
    assert all(inbox(container, str(p["eventId"])).deliveries == 2 for p in delivered)


def test_a_stale_notification_changes_nothing_and_calls_nobody(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """A message older than the applied version (a late redelivery) is settled untouched."""
    container = make_container(approval_policy="auto")
    _, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    delivered = Feed(emulator, container).deliver()
    creation = next(p for p in delivered if p["eventType"] == "ENTITLEMENT_CREATION_REQUESTED")
    before = entitlement_row(container, entitlement.id)
    calls = api_calls(container)
    late = {**creation, "eventId": "late-copy"}
    assert handle_message(container, encode(late)) is Disposition.ACK
    assert api_calls(container) == calls
    row = inbox(container, "late-copy")
    assert row.status == "processed"
    after = entitlement_row(container, entitlement.id)
    assert (after.state, after.google_update_time) == (before.state, before.google_update_time)


def test_reordered_notifications_end_at_the_api_truth(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    """The whole story delivered backwards still ends in the API's current state."""
    container = make_container(approval_policy="auto")
    sink = make_container(approval_policy="auto")  # approves at Google; its records are not checked
    _, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    Feed(emulator, sink).deliver()
    emulator.procurement.change_plan(PROVIDER, entitlement.id, "pro")
    Feed(emulator, sink).deliver()
    emulator.procurement.cancel(PROVIDER, entitlement.id, at_term_end=True)
    story = emulator.notifications(PROVIDER)
    for payload in reversed(story):
        assert handle_message(container, encode(payload)) is Disposition.ACK
    truth = emulator.procurement.get_entitlement(PROVIDER, entitlement.id)
    row = entitlement_row(container, entitlement.id)
    assert (row.state, row.plan, row.service_plan) == (truth.state, truth.plan, "pro")
    assert truth.state == "ENTITLEMENT_PENDING_CANCELLATION"


def test_an_api_outage_nacks_counts_attempts_then_parks_and_replay_recovers(
    emulator: Emulator, make_container: ContainerFactory
) -> None:
    container = make_container(approval_policy="auto", max_delivery_attempts=3)
    emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    creation = next(
        p
        for p in emulator.notifications(PROVIDER)
        if p["eventType"] == "ENTITLEMENT_CREATION_REQUESTED"
    )
    emulator.faults.configure(
        FaultSettings(procurement=ProcurementFaults(error_rate=1.0, statuses=[503]))
    )
    data = encode(creation)
    event_id = str(creation["eventId"])
    assert handle_message(container, data) is Disposition.NACK
    assert (inbox(container, event_id).status, inbox(container, event_id).attempts) == (
        "retrying",
        1,
    )
    assert handle_message(container, data) is Disposition.NACK
    assert handle_message(container, data) is Disposition.ACK  # third attempt: parked
    row = inbox(container, event_id)
    assert (row.status, row.attempts, row.deliveries) == ("parked", 3, 3)
    assert row.last_error is not None
    assert row.last_error.startswith("transient: TransientProcurementError")
    assert handle_message(container, data) is Disposition.ACK  # parked stays parked
    assert inbox(container, event_id).attempts == 3

    emulator.faults.clear()
    result = replay(container, event_id)
    assert (result.status, result.error) == ("processed", None)
    assert inbox(container, event_id).status == "processed"
    entitlement_id = str(creation["entitlement"]["id"])
    assert entitlement_row(container, entitlement_id).service_enabled


class BrokenGateway:
    """A Procurement gateway with a bug in one method (tests swap adapters via bootstrap)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.provider_id = inner.provider_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_entitlement(self, entitlement_id: str) -> dict[str, Any] | None:
        raise RuntimeError("a bug in the handler's path")


def test_a_bug_is_recorded_with_its_traceback_and_retried(
    emulator: Emulator, container: Container
) -> None:
    broken = bootstrap(
        container.settings,
        procurement=BrokenGateway(container.procurement),
        engine=container.engine,
    )
    _, entitlement = emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    creation = emulator.notifications(PROVIDER)[-1]
    assert creation["eventType"] == "ENTITLEMENT_CREATION_REQUESTED"
    assert handle_message(broken, encode(creation)) is Disposition.NACK
    row = inbox(container, str(creation["eventId"]))
    assert row.status == "retrying"
    assert row.last_error == "error: RuntimeError: a bug in the handler's path"
    assert row.traceback is not None
    assert "get_entitlement" in row.traceback
    # Fixed: the redelivery succeeds.
    assert handle_message(container, encode(creation)) is Disposition.ACK
    assert inbox(container, str(creation["eventId"])).status == "processed"
    assert entitlement_row(container, entitlement.id).state == "ENTITLEMENT_ACTIVATION_REQUESTED"


class RacedGateway(BrokenGateway):
    """While this worker reads the entitlement, another worker settles the same message; then
    this worker's call fails as if the API had timed out (two listeners, one redelivery)."""

    def __init__(self, inner: Any, other: Container, data: bytes) -> None:
        super().__init__(inner)
        self._other, self._data = other, data

    def get_entitlement(self, entitlement_id: str) -> dict[str, Any] | None:
        assert handle_message(self._other, self._data) is Disposition.ACK
        raise TransientProcurementError("timed out", status_code=None)


def test_a_failed_attempt_never_unsettles_a_message_another_worker_processed(
    emulator: Emulator, container: Container
) -> None:
    """The losing worker acks: its failure must not turn `processed` back into `retrying`
    (Pub/Sub already has the other worker's ack, so nothing would ever retry it)."""
    emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    data = encode(emulator.notifications(PROVIDER)[-1])
    raced = bootstrap(
        container.settings,
        procurement=RacedGateway(container.procurement, container, data),
        engine=container.engine,
    )
    assert handle_message(raced, data) is Disposition.ACK
    row = inbox(container, json.loads(data)["eventId"])
    assert row.status == "processed"
    assert row.attempts == 2  # both attempts are counted: the other worker's and this failed one


def test_replay_of_an_unknown_event_is_a_clear_error(container: Container) -> None:
    with pytest.raises(LookupError, match="no notification with eventId 'nope'"):
        replay(container, "nope")


def test_the_raw_payload_is_stored_as_received(emulator: Emulator, container: Container) -> None:
    emulator.procurement.purchase(PROVIDER, PRODUCT, "basic")
    payload = emulator.notifications(PROVIDER)[0]
    data = json.dumps(payload, indent=2).encode()
    handle_message(container, data, message_id="pubsub-1", source="push")
    row = inbox(container, str(payload["eventId"]))
    assert (row.payload, row.message_id, row.source) == (data.decode(), "pubsub-1", "push")
    assert row.subject_kind == "account"
    assert row.processed_at is not None
