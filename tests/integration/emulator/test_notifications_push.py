"""Push delivery over real HTTP to a local receiver, as Pub/Sub's push subscription would."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from marketplace_emulator.faults import FaultInjector
from marketplace_emulator.notifier import Notifier, RetryPolicy

pytestmark = pytest.mark.integration


class PushReceiver:
    """A local HTTP endpoint: records each POST body, answers the scripted statuses then 200."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.bodies.append(json.loads(body))
                    receiver.paths.append(self.path)
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pubsub/push"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    receiver = PushReceiver()
    yield receiver
    receiver.close()


def test_push_retries_until_the_endpoint_accepts_then_stops(
    receiver: PushReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """500 then 503 are retried; the 200 acks; the body is Pub/Sub's push envelope each time."""
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    receiver.statuses += [500, 503]
    notifier = Notifier(
        FaultInjector(),
        push_endpoint=receiver.url,
        retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_attempts=5),
    )
    payload = {
        "eventId": "ev-1",
        "eventType": "ACCOUNT_ACTIVE",
        "providerId": "DEMO-p",
        "account": {"id": "acct-1", "updateTime": "2026-01-01T00:00:00Z"},
    }
    try:
        notifier.publish("DEMO-p", payload)
        assert notifier.flush(timeout=10)
    finally:
        notifier.close()
    assert receiver.paths == ["/pubsub/push"] * 3
    assert all(body == receiver.bodies[0] for body in receiver.bodies)
    envelope = receiver.bodies[0]
    assert envelope["subscription"] == "projects/cloudcommerceproc-prod/subscriptions/DEMO-p-push"
    assert json.loads(base64.b64decode(envelope["message"]["data"])) == payload
    assert notifier.stats().delivered == 1


def test_an_unreachable_endpoint_never_raises_into_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connection refused: publish returns, retries run out, the notification stays listed."""
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    receiver = PushReceiver()
    url = receiver.url
    receiver.close()  # nothing listens there any more
    notifier = Notifier(
        FaultInjector(),
        push_endpoint=url,
        retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.02, max_attempts=3),
    )
    try:
        notifier.publish("DEMO-p", {"eventId": "ev-1", "providerId": "DEMO-p"})
        assert notifier.flush(timeout=10)
        assert notifier.stats().failed == 1
        assert notifier.published() == [{"eventId": "ev-1", "providerId": "DEMO-p"}]
    finally:
        notifier.close()
