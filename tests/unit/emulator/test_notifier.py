"""The notifier: recording, Pub/Sub delivery through a fake publisher, retries, faults."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from google.api_core import exceptions as api_exceptions

from marketplace_emulator.faults import FaultInjector, FaultSettings
from marketplace_emulator.notifier import Notifier, RetryPolicy

FAST_RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.005, max_attempts=4)
PROVIDER = "DEMO-project"


def payload(n: int, provider: str = PROVIDER) -> dict[str, Any]:
    return {
        "eventId": f"event-{n}",
        "eventType": "ENTITLEMENT_ACTIVE",
        "providerId": provider,
        "entitlement": {"id": f"ent-{n}", "updateTime": "2026-01-01T00:00:00Z"},
    }


def faults(**notifications: object) -> FaultInjector:
    injector = FaultInjector()
    seed = notifications.pop("seed", 0)
    injector.configure(FaultSettings.model_validate({"seed": seed, "notifications": notifications}))
    return injector


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `condition` until it holds or `timeout` passes (no timed assertions)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return condition()


class FakePublisher:
    """Stands in for PublisherClient: records topics and messages, fails on demand."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self.messages: list[tuple[str, bytes]] = []
        self.failures: list[BaseException] = []
        self.topic_failures: list[BaseException] = []
        self.gate = threading.Event()
        self.gate.set()
        self.stopped = False
        self._lock = threading.Lock()

    def create_topic(self, *, name: str, timeout: float) -> object:
        with self._lock:
            if self.topic_failures:
                raise self.topic_failures.pop(0)
            if name in self.topics:
                raise api_exceptions.AlreadyExists(f"{name} exists")
            self.topics.append(name)
        return object()

    def publish(self, topic: str, data: bytes, *, timeout: float) -> Future[str]:
        self.gate.wait(10)
        future: Future[str] = Future()
        with self._lock:
            if self.failures:
                future.set_exception(self.failures.pop(0))
                return future
            self.messages.append((topic, data))
            future.set_result(str(len(self.messages)))
        return future

    def stop(self) -> None:
        self.stopped = True

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(data) for _, data in self.messages]


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def make_notifier(publisher: FakePublisher) -> Iterator[Callable[..., Notifier]]:
    created: list[Notifier] = []

    def make(injector: FaultInjector | None = None, **kwargs: Any) -> Notifier:
        kwargs.setdefault("publisher", publisher)
        kwargs.setdefault("retry", FAST_RETRY)
        notifier = Notifier(injector or FaultInjector(), **kwargs)
        created.append(notifier)
        return notifier

    yield make
    for notifier in created:
        notifier.close()


def test_without_pubsub_or_push_notifications_are_only_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No PUBSUB_EMULATOR_HOST and no push URL: record in order, deliver nowhere."""
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    notifier = Notifier(FaultInjector())
    try:
        for n in range(3):
            notifier.publish(PROVIDER, payload(n))
        assert notifier.modes == []
        assert [p["eventId"] for p in notifier.published()] == ["event-0", "event-1", "event-2"]
        assert notifier.flush(timeout=1)
        assert notifier.stats().delivered == 0
    finally:
        notifier.close()


def test_payload_is_published_as_utf8_json_to_the_providers_topic(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """Topic projects/cloudcommerceproc-prod/topics/{providerId}; data is the JSON payload."""
    notifier = make_notifier()
    event = payload(1)
    event["entitlement"]["newPlan"] = "pro-ü"
    notifier.publish(PROVIDER, event)
    assert notifier.flush(timeout=5)
    topic = f"projects/cloudcommerceproc-prod/topics/{PROVIDER}"
    assert publisher.topics == [topic]
    assert [t for t, _ in publisher.messages] == [topic]
    assert json.loads(publisher.messages[0][1].decode("utf-8")) == event
    assert notifier.modes == ["pubsub"]


def test_topic_is_created_once_per_provider_and_at_start_for_given_providers(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """Providers given at start get topics at once; later providers when first seen."""
    notifier = make_notifier(pubsub_project="local-proj", providers=["P1"])
    assert publisher.topics == ["projects/local-proj/topics/P1"]
    for n in range(3):
        notifier.publish("P1", payload(n, "P1"))
        notifier.publish("P2", payload(n, "P2"))
    assert notifier.flush(timeout=5)
    assert publisher.topics == ["projects/local-proj/topics/P1", "projects/local-proj/topics/P2"]
    assert len(publisher.messages) == 6


def test_an_existing_topic_is_not_an_error(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """AlreadyExists from create_topic is ignored and the message is still published."""
    publisher.topic_failures.append(api_exceptions.AlreadyExists("exists"))
    notifier = make_notifier()
    notifier.publish(PROVIDER, payload(1))
    assert notifier.flush(timeout=5)
    assert publisher.payloads() == [payload(1)]
    assert notifier.stats().failed == 0


def test_publish_returns_while_the_delivery_is_still_blocked(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """The caller never waits on the network: delivery happens on the worker thread."""
    publisher.gate.clear()
    notifier = make_notifier()
    notifier.publish(PROVIDER, payload(1))
    notifier.publish(PROVIDER, payload(2))
    assert [p["eventId"] for p in notifier.published()] == ["event-1", "event-2"]
    assert not notifier.flush(timeout=0.05)
    assert notifier.stats().pending == 2
    publisher.gate.set()
    assert notifier.flush(timeout=5)
    assert [p["eventId"] for p in publisher.payloads()] == ["event-1", "event-2"]


def test_a_failed_publish_is_retried_until_it_succeeds(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """Transient Pub/Sub errors are retried with backoff; the message arrives once."""
    publisher.failures += [api_exceptions.ServiceUnavailable("down")] * 2
    notifier = make_notifier()
    notifier.publish(PROVIDER, payload(1))
    assert notifier.flush(timeout=5)
    assert publisher.payloads() == [payload(1)]
    stats = notifier.stats()
    assert (stats.delivered, stats.retried, stats.failed) == (1, 2, 0)


def test_a_vanished_topic_is_created_again(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """NotFound on publish (the Pub/Sub emulator restarted) recreates the topic, then publishes."""
    notifier = make_notifier()
    notifier.publish(PROVIDER, payload(1))
    assert notifier.flush(timeout=5)
    publisher.topics.clear()
    publisher.failures.append(api_exceptions.NotFound("no topic"))
    notifier.publish(PROVIDER, payload(2))
    assert notifier.flush(timeout=5)
    assert publisher.topics == [f"projects/cloudcommerceproc-prod/topics/{PROVIDER}"]
    assert [p["eventId"] for p in publisher.payloads()] == ["event-1", "event-2"]


def test_delivery_gives_up_after_max_attempts_without_raising(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """A delivery that keeps failing is dropped after max_attempts; flush still completes."""
    publisher.failures += [api_exceptions.ServiceUnavailable("down")] * 10
    notifier = make_notifier()
    notifier.publish(PROVIDER, payload(1))
    assert notifier.flush(timeout=5)
    stats = notifier.stats()
    assert (stats.delivered, stats.retried, stats.failed) == (0, 3, 1)
    assert len(publisher.failures) == 10 - FAST_RETRY.max_attempts


def test_an_invalid_topic_name_is_given_up_at_once(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """InvalidArgument from create_topic is permanent: no retries."""
    publisher.topic_failures.append(api_exceptions.InvalidArgument("bad topic name"))
    notifier = make_notifier()
    notifier.publish("bad name", payload(1, "bad name"))
    assert notifier.flush(timeout=5)
    stats = notifier.stats()
    assert (stats.retried, stats.failed) == (0, 1)


def test_a_publisher_that_raises_is_a_failed_attempt_not_a_crash(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """An exception raised by publish() itself is retried and the worker keeps running."""
    calls = 0
    real_publish = publisher.publish

    def flaky(topic: str, data: bytes, *, timeout: float) -> Future[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("client blew up")
        return real_publish(topic, data, timeout=timeout)

    publisher.publish = flaky  # type: ignore[method-assign]
    notifier = make_notifier()
    notifier.publish(PROVIDER, payload(1))
    notifier.publish(PROVIDER, payload(2))
    assert notifier.flush(timeout=5)
    assert sorted(p["eventId"] for p in publisher.payloads()) == ["event-1", "event-2"]


def test_duplicates_repeat_the_same_payload_and_event_id(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """duplicateRate=1 delivers every notification twice, same eventId; recorded once."""
    notifier = make_notifier(faults(duplicateRate=1.0))
    for n in range(3):
        notifier.publish(PROVIDER, payload(n))
    assert notifier.flush(timeout=5)
    ids = [p["eventId"] for p in publisher.payloads()]
    assert ids == ["event-0", "event-0", "event-1", "event-1", "event-2", "event-2"]
    assert publisher.payloads()[0] == publisher.payloads()[1] == payload(0)
    assert len(notifier.published()) == 3
    assert notifier.stats().duplicated == 3


def test_partial_duplicate_rate_is_reproducible_with_the_seed() -> None:
    """The same seed duplicates the same notifications on every run."""

    def run(seed: int) -> list[str]:
        fake = FakePublisher()
        notifier = Notifier(faults(seed=seed, duplicateRate=0.5), publisher=fake, retry=FAST_RETRY)
        try:
            for n in range(20):
                notifier.publish(PROVIDER, payload(n))
            assert notifier.flush(timeout=5)
            return [p["eventId"] for p in fake.payloads()]
        finally:
            notifier.close()

    first = run(3)
    assert first == run(3)
    assert 20 < len(first) < 40
    assert sorted(set(first)) == sorted(f"event-{n}" for n in range(20))


def reorder_run(seed: int, count: int = 12) -> list[str]:
    publisher = FakePublisher()
    notifier = Notifier(
        faults(seed=seed, reorder=True),
        publisher=publisher,
        retry=FAST_RETRY,
        reorder_window=5,
        reorder_hold=60,
    )
    try:
        for n in range(count):
            notifier.publish(PROVIDER, payload(n))
        assert notifier.flush(timeout=5)
        return [p["eventId"] for p in publisher.payloads()]
    finally:
        notifier.close()


def test_reorder_is_deterministic_per_seed_and_loses_nothing() -> None:
    """Batches are shuffled with the seeded generator; the partial batch is released at flush."""
    published = [f"event-{n}" for n in range(12)]
    first = reorder_run(seed=11)
    assert first == reorder_run(seed=11)
    assert first != published
    assert sorted(first) == sorted(published)
    assert len(first) == 12
    # Shuffling stays within batches of reorder_window: 0-4, 5-9, then the flushed 10-11.
    assert sorted(first[:5]) == published[:5]
    assert sorted(first[5:10]) == sorted(published[5:10])
    assert sorted(first[10:]) == published[10:]
    assert any(reorder_run(seed) != first for seed in (1, 2, 3))


def test_a_partial_reorder_batch_is_released_after_the_hold_without_flush(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """Held notifications are not stuck: a quiet period releases the partial batch."""
    notifier = make_notifier(faults(reorder=True), reorder_window=10, reorder_hold=0.05)
    notifier.publish(PROVIDER, payload(1))
    notifier.publish(PROVIDER, payload(2))
    assert wait_until(lambda: len(publisher.messages) == 2)
    assert sorted(p["eventId"] for p in publisher.payloads()) == ["event-1", "event-2"]


def test_turning_reorder_off_releases_what_was_held(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """Notifications held for reordering go out before the first one published after."""
    injector = faults(reorder=True)
    notifier = make_notifier(injector, reorder_hold=60)
    notifier.publish(PROVIDER, payload(1))
    injector.clear()
    notifier.publish(PROVIDER, payload(2))
    assert notifier.flush(timeout=5)
    assert [p["eventId"] for p in publisher.payloads()] == ["event-1", "event-2"]


def test_delayed_notifications_are_not_delivered_before_the_delay(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """delayMs holds delivery back; reset drops what is still waiting."""
    notifier = make_notifier(faults(delayMs=600_000))
    notifier.publish(PROVIDER, payload(1))
    assert not notifier.flush(timeout=0.1)
    assert publisher.messages == []
    assert notifier.stats().pending == 1
    notifier.reset()
    assert notifier.flush(timeout=1)
    assert notifier.published() == []


def test_a_short_delay_still_delivers(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """delayMs postpones delivery but loses nothing; flush waits for it."""
    notifier = make_notifier(faults(delayMs=20))
    notifier.publish(PROVIDER, payload(1))
    assert notifier.flush(timeout=5)
    assert publisher.payloads() == [payload(1)]


def test_reset_forgets_recorded_notifications_and_pending_retries(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """After reset nothing is listed, and a delivery that was retrying is abandoned."""
    publisher.failures += [api_exceptions.ServiceUnavailable("down")] * 100
    notifier = make_notifier(retry=RetryPolicy(initial_backoff=60, max_attempts=100))
    notifier.publish(PROVIDER, payload(1))
    assert wait_until(lambda: notifier.stats().retried == 1)
    notifier.reset()
    assert notifier.published() == []
    assert notifier.flush(timeout=1)
    assert notifier.stats() == type(notifier.stats())()


def test_close_stops_the_worker_and_the_publisher(
    make_notifier: Callable[..., Notifier], publisher: FakePublisher
) -> None:
    """After close the publisher is stopped; publish still records and never raises."""
    notifier = make_notifier()
    notifier.close()
    assert publisher.stopped
    notifier.publish(PROVIDER, payload(1))
    assert [p["eventId"] for p in notifier.published()] == ["event-1"]
    assert publisher.messages == []


def test_backoff_doubles_up_to_its_cap() -> None:
    """RetryPolicy.backoff grows exponentially and never passes max_backoff."""
    policy = RetryPolicy(initial_backoff=1, max_backoff=5, multiplier=2)
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
