"""The listener's pull loop over a fake Pub/Sub client: a pull waits for room for half of
LISTENER_MAX_MESSAGES, not one pull per finished message."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from marketplace_saas.config import Settings
from marketplace_saas.entrypoints.listener import Listener, Message

WAIT = 30.0  # seconds; a bound against a hang, never a timing assertion


class FakeSubscriber:
    """Hands out up to `max_messages` of its messages per pull; records each pull's size."""

    def __init__(self, count: int) -> None:
        self.waiting = [
            SimpleNamespace(
                ack_id=f"ack-{i}", message=SimpleNamespace(data=b"{}", message_id=str(i))
            )
            for i in range(count)
        ]
        self.pulls: list[int] = []
        self.acked: list[str] = []
        self.nacked: list[str] = []
        self.lock = threading.Lock()

    def pull(self, request: dict[str, Any], timeout: float, retry: Any) -> Any:
        with self.lock:
            self.pulls.append(request["max_messages"])
            taken = self.waiting[: request["max_messages"]]
            del self.waiting[: request["max_messages"]]
        if not taken:
            time.sleep(0.01)  # the long poll, shortened
        return SimpleNamespace(received_messages=taken)

    def acknowledge(self, request: dict[str, Any]) -> None:
        with self.lock:
            self.acked.extend(request["ack_ids"])

    def modify_ack_deadline(self, request: dict[str, Any]) -> None:
        if request["ack_deadline_seconds"] == 0:
            with self.lock:
                self.nacked.extend(request["ack_ids"])


def until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_a_pull_waits_until_half_of_the_limit_has_room() -> None:
    settings = Settings(_env_file=None, LISTENER_MAX_MESSAGES=50)  # type: ignore[call-arg]
    client = FakeSubscriber(200)
    gate = threading.Semaphore(0)

    def callback(message: Message) -> None:
        assert gate.acquire(timeout=WAIT)
        message.ack()

    listener = Listener(settings, callback, client=client, subscription="projects/p/subs/s")
    in_flight = lambda: len(listener._in_flight)  # noqa: E731
    listener.start()
    try:
        assert until(lambda: client.pulls == [50] and in_flight() == 50)
        gate.release(20)  # 30 in flight: room for 20, less than half of 50
        assert until(lambda: in_flight() == 30)
        assert client.pulls == [50]
        gate.release(5)  # 25 in flight: room for 25
        assert until(lambda: len(client.pulls) == 2)
        assert client.pulls == [50, 25]
    finally:
        gate.release(1000)
        listener.stop()
    # Every message pulled was settled once: acked, or nacked by stop() before it started.
    assert sorted(client.acked + client.nacked) == sorted(f"ack-{i}" for i in range(75))


def test_the_stuck_report_delay_is_a_setting() -> None:
    """LISTENER_STUCK_SECONDS (the chaos run shortens it; a test may pass its own)."""
    settings = Settings(_env_file=None, LISTENER_STUCK_SECONDS=25)  # type: ignore[call-arg]
    callback = lambda message: None  # noqa: E731
    assert Listener(settings, callback, client=FakeSubscriber(0)).stuck_seconds == 25
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert Listener(default, callback, client=FakeSubscriber(0)).stuck_seconds == 120
    assert (
        Listener(settings, callback, client=FakeSubscriber(0), stuck_seconds=3).stuck_seconds == 3
    )
