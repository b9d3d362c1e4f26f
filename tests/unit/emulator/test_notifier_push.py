"""Push delivery: Pub/Sub's push envelope POSTed to a URL, 2xx acks, anything else retries."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from marketplace_emulator.clock import parse_rfc3339
from marketplace_emulator.faults import FaultInjector, FaultSettings
from marketplace_emulator.notifier import Notifier, RetryPolicy

FAST_RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.005, max_attempts=4)
ENDPOINT = "http://backend.test/pubsub/push"


def payload(n: int, provider: str = "DEMO-project") -> dict[str, Any]:
    return {
        "eventId": f"event-{n}",
        "eventType": "ENTITLEMENT_PLAN_CHANGED",
        "providerId": provider,
        "entitlement": {"id": f"ent-{n}", "updateTime": "2026-01-01T00:00:00Z", "newPlan": "pro"},
    }


class Receiver:
    """A push endpoint behind httpx.MockTransport: answers the next scripted status (or 200)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[int | Exception] = []
        self._lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            step = self.script.pop(0) if self.script else 200
        if isinstance(step, Exception):
            raise step
        return httpx.Response(step)

    def envelopes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(r.content) for r in self.requests]


def decoded(envelope: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.b64decode(envelope["message"]["data"]))
    return data


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def make_notifier(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Notifier]]:
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    created: list[Notifier] = []

    def make(injector: FaultInjector | None = None, **kwargs: Any) -> Notifier:
        kwargs.setdefault("retry", FAST_RETRY)
        client = httpx.Client(transport=httpx.MockTransport(receiver.handle))
        notifier = Notifier(
            injector or FaultInjector(), push_endpoint=ENDPOINT, http_client=client, **kwargs
        )
        created.append(notifier)
        return notifier

    yield make
    for notifier in created:
        notifier.close()


def test_push_posts_pubsubs_envelope_to_the_endpoint(
    make_notifier: Callable[..., Notifier], receiver: Receiver
) -> None:
    """Envelope: message{data base64 JSON, attributes {}, messageId, publishTime}, subscription."""
    notifier = make_notifier(pubsub_project="cloudcommerceproc-prod")
    notifier.publish("DEMO-project", payload(1))
    assert notifier.flush(timeout=5)
    assert notifier.modes == ["push"]
    [request] = receiver.requests
    assert request.method == "POST"
    assert str(request.url) == ENDPOINT
    assert request.headers["content-type"] == "application/json"
    envelope = receiver.envelopes()[0]
    assert set(envelope) == {"message", "subscription"}
    assert envelope["subscription"] == (
        "projects/cloudcommerceproc-prod/subscriptions/DEMO-project-push"
    )
    message = envelope["message"]
    assert decoded(envelope) == payload(1)
    assert message["attributes"] == {}
    assert message["messageId"]
    assert message["messageId"] == message["message_id"]
    assert message["publishTime"] == message["publish_time"]
    assert parse_rfc3339(message["publishTime"]).tzinfo is not None


def test_push_retries_on_500_then_succeeds_with_the_same_message(
    make_notifier: Callable[..., Notifier], receiver: Receiver
) -> None:
    """Non-2xx is retried; the retry carries the same messageId, publishTime and data."""
    receiver.script += [500, 503]
    notifier = make_notifier()
    notifier.publish("DEMO-project", payload(1))
    assert notifier.flush(timeout=5)
    envelopes = receiver.envelopes()
    assert len(envelopes) == 3
    assert all(e == envelopes[0] for e in envelopes)
    stats = notifier.stats()
    assert (stats.delivered, stats.retried, stats.failed) == (1, 2, 0)


def test_push_retries_after_a_connection_error(
    make_notifier: Callable[..., Notifier], receiver: Receiver
) -> None:
    """A refused connection counts as a failed attempt and is retried."""
    receiver.script.append(httpx.ConnectError("refused"))
    notifier = make_notifier()
    notifier.publish("DEMO-project", payload(1))
    assert notifier.flush(timeout=5)
    assert len(receiver.requests) == 2
    assert notifier.stats().delivered == 1


def test_any_2xx_acks_the_push(make_notifier: Callable[..., Notifier], receiver: Receiver) -> None:
    """204 and 202 are acknowledgements: no retry follows."""
    receiver.script += [204, 202]
    notifier = make_notifier()
    notifier.publish("DEMO-project", payload(1))
    notifier.publish("DEMO-project", payload(2))
    assert notifier.flush(timeout=5)
    assert [decoded(e)["eventId"] for e in receiver.envelopes()] == ["event-1", "event-2"]
    assert notifier.stats().retried == 0


def test_push_gives_up_after_the_configured_attempts(
    make_notifier: Callable[..., Notifier], receiver: Receiver
) -> None:
    """An endpoint that always fails gets max_attempts tries, then the message is dropped."""
    receiver.script += [500] * 10
    notifier = make_notifier(retry=RetryPolicy(initial_backoff=0.001, max_attempts=3))
    notifier.publish("DEMO-project", payload(1))
    assert notifier.flush(timeout=5)
    assert len(receiver.requests) == 3
    assert notifier.stats().failed == 1


def test_push_duplicates_share_the_event_id_but_not_the_message_id(
    make_notifier: Callable[..., Notifier], receiver: Receiver
) -> None:
    """A duplicated notification is published twice: same payload, two Pub/Sub messages."""
    injector = FaultInjector()
    injector.configure(FaultSettings.model_validate({"notifications": {"duplicateRate": 1}}))
    notifier = make_notifier(injector)
    notifier.publish("DEMO-project", payload(1))
    assert notifier.flush(timeout=5)
    first, second = receiver.envelopes()
    assert decoded(first) == decoded(second) == payload(1)
    assert first["message"]["messageId"] != second["message"]["messageId"]


def test_with_pubsub_and_push_each_target_gets_every_notification(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both configured: delivered to the topic and pushed, like two subscriptions on one topic."""
    from tests.unit.emulator.test_notifier import FakePublisher

    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    publisher = FakePublisher()
    client = httpx.Client(transport=httpx.MockTransport(receiver.handle))
    notifier = Notifier(
        FaultInjector(),
        push_endpoint=ENDPOINT,
        publisher=publisher,
        http_client=client,
        retry=FAST_RETRY,
    )
    try:
        notifier.publish("DEMO-project", payload(1))
        assert notifier.flush(timeout=5)
        assert notifier.modes == ["pubsub", "push"]
        assert publisher.payloads() == [payload(1)]
        assert [decoded(e) for e in receiver.envelopes()] == [payload(1)]
        assert notifier.stats().delivered == 2
    finally:
        notifier.close()
