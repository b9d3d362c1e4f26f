"""Test doubles for hook delivery: a real HTTP webhook receiver that verifies our signatures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from marketplace_saas import webhooks
from marketplace_saas.domain.hooks import AccountInfo, EntitlementInfo, HookPayload

SECRET = "test-webhook-secret-0123456789abcdef0123"


@dataclass(frozen=True)
class Received:
    hook: str
    idempotency_key: str
    ordering_key: str
    event: dict[str, Any]


# A behaviour maps the verified event to (status, seconds to wait before answering).
Behaviour = Callable[[dict[str, Any]], tuple[int, float]]


def ok(_event: dict[str, Any]) -> tuple[int, float]:
    return 200, 0.0


@dataclass
class WebhookServer:
    """Records every verified delivery; answers 400 to a bad signature, like a provider should."""

    secret: str = SECRET
    behaviour: Behaviour = ok
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, body: bytes, headers: Any) -> tuple[int, float]:
        try:
            event = webhooks.verify(body, headers.get(webhooks.SIGNATURE_HEADER), self.secret)
        except webhooks.SignatureError as exc:
            with self.lock:
                self.rejected.append(str(exc))
            return 400, 0.0
        status, delay = self.behaviour(event)
        if 200 <= status < 300:
            entitlement = (event["data"].get("entitlement") or {}).get("id")
            account = (event["data"].get("account") or {}).get("id")
            with self.lock:
                self.received.append(
                    Received(
                        hook=event["hook"],
                        idempotency_key=headers.get(webhooks.IDEMPOTENCY_HEADER),
                        ordering_key=entitlement or account or "",
                        event=event,
                    )
                )
        return status, delay

    def keys(self) -> list[str]:
        with self.lock:
            return [item.idempotency_key for item in self.received]


@contextmanager
def webhook_server(server: WebhookServer | None = None) -> Iterator[WebhookServer]:
    receiver = server or WebhookServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, delay = receiver.handle(body, self.headers)
            if delay:
                time.sleep(delay)
            payload = json.dumps({"status": status}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the dispatcher gave up waiting (timeout) or died

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@contextmanager
def garbage_server() -> Iterator[str]:
    """A TCP server that answers every connection with bytes that are not HTTP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    conn.sendall(b"\x00\xffthis is not http at all\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


class StepClock:
    """A clock tests move by hand: backoff and leases without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        # A second ahead of the wall clock: items enqueued now (at wall-clock time) are due.
        self.value = start or datetime.now(UTC) + timedelta(seconds=1)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.value

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.value += timedelta(**delta)


def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll until `condition()` is truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


CALLS: list[tuple[str, Any, str]] = []


def record_call(hook: str, payload: Any, *, idempotency_key: str) -> None:
    """A Python-callable receiver (`python:tests.integration.backend.hooks_support:record_call`)."""
    CALLS.append((hook, payload, idempotency_key))


def failing_call(hook: str, payload: Any, *, idempotency_key: str) -> None:
    raise RuntimeError(f"provisioning backend down for {hook}")


def payload(entitlement_id: str, plan: str = "basic") -> HookPayload:
    """A typical entitlement hook payload."""
    return HookPayload(
        account=AccountInfo(id="acct-1", state="ACCOUNT_ACTIVE"),
        entitlement=EntitlementInfo(
            id=entitlement_id, account_id="acct-1", state="ENTITLEMENT_ACTIVE", plan=plan
        ),
        plan=plan,
    )


class OrderedCalls:
    """A receiver's log that notices two deliveries of one entitlement at the same time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.started: list[str] = []  # idempotency keys, in the order deliveries began
        self.busy: set[str] = set()  # entitlements being delivered right now
        self.overlaps: list[str] = []


ORDERED = OrderedCalls()


def slow_ordered_call(hook: str, payload: Any, *, idempotency_key: str) -> None:
    """A receiver (`python:tests.integration.backend.hooks_support:slow_ordered_call`) that takes
    a little while, so that a second dispatcher would overlap one entitlement's hooks."""
    key = payload.entitlement.id
    with ORDERED.lock:
        if key in ORDERED.busy:
            ORDERED.overlaps.append(idempotency_key)
        ORDERED.busy.add(key)
        ORDERED.started.append(idempotency_key)
    time.sleep(0.03)
    with ORDERED.lock:
        ORDERED.busy.discard(key)
