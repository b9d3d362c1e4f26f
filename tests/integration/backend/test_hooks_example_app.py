"""The example provider app, driven by real hook deliveries: workspaces made, changed, removed."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace_saas import webhooks
from marketplace_saas.adapters.hooks import validate_receivers
from marketplace_saas.bootstrap import Container, bootstrap
from marketplace_saas.domain.hooks import RetryPolicy
from marketplace_saas.entrypoints.example_provider import (
    SANDBOX_USAGE_TOKEN,
    ExampleProvider,
    attach_example_provider,
    start_example_provider,
)
from marketplace_saas.service.hooks.dispatch import Dispatcher
from marketplace_saas.service.hooks.outbox import enqueue_hook
from tests.integration.backend.conftest import backend_settings
from tests.integration.backend.hooks_support import SECRET, payload
from tests.support.infra import free_port

TOKEN = "example-usage-token"


@pytest.fixture
def usage_backend() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the backend's `POST /v1/usage`, recording what the app sends."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(
                {"path": self.path, "auth": self.headers.get("Authorization"), **json.loads(body)}
            )
            answer = b'{"accepted": 1, "duplicates": 0, "rejected": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def app(
    tmp_path: Path, usage_backend: tuple[str, list[dict[str, Any]]]
) -> Iterator[ExampleProvider]:
    provider = start_example_provider(
        free_port(),
        backend_url=usage_backend[0],
        secret=SECRET,
        usage_token=TOKEN,
        data_dir=tmp_path / "provider-data",
    )
    assert provider is not None, "examples/provider_app/app.py is part of the repository"
    yield provider
    provider.stop()


@pytest.fixture
def deliver(migrated_database_url: str, app: ExampleProvider) -> Iterator[Callable[..., None]]:
    settings = backend_settings(
        migrated_database_url,
        "http://127.0.0.1:9",
        hook_receivers=app.hooks_url,
        hook_webhook_secret=SECRET,
    )
    container: Container = bootstrap(settings)
    worker = Dispatcher(container, validate_receivers(settings), policy=RetryPolicy(1))
    count = iter(range(1000))

    def send(hook: str, entitlement_id: str, plan: str = "basic") -> None:
        with container.unit_of_work() as uow:
            enqueue_hook(
                uow,
                hook,
                ordering_key=entitlement_id,
                idempotency_key=f"{hook}:{entitlement_id}:{next(count)}",
                payload=payload(entitlement_id, plan),
            )
        result = worker.drain()
        assert result.failed == result.dead == []

    yield send
    container.close()


def workspaces(app: ExampleProvider) -> dict[str, Any]:
    return dict(httpx.get(f"{app.url}/api/workspaces").json()["workspaces"])


def test_hooks_create_change_and_remove_a_workspace_in_the_example_app(
    app: ExampleProvider, deliver: Callable[..., None], tmp_path: Path
) -> None:
    deliver("entitlement.active", "ent-1", "basic")
    assert workspaces(app)["ent-1"]["plan"] == "basic"
    assert workspaces(app)["ent-1"]["status"] == "active"
    deliver("entitlement.plan_changed", "ent-1", "pro")
    assert workspaces(app)["ent-1"]["plan"] == "pro"
    page = httpx.get(app.url + "/").text
    assert "ent-1" in page
    assert "pro" in page
    deliver("entitlement.cancelled", "ent-1")
    assert "ent-1" not in workspaces(app)
    stored = json.loads((tmp_path / "provider-data" / "workspaces.json").read_text())
    assert stored["workspaces"] == {}
    assert len(stored["applied"]) == 3


def test_the_example_app_rejects_a_bad_signature_and_ignores_a_repeated_delivery(
    app: ExampleProvider,
) -> None:
    event = {"id": "k-1", "hook": "entitlement.active", "data": payload("ent-9").to_dict()}
    body = json.dumps(event).encode()
    forged = httpx.post(
        f"{app.hooks_url}",
        content=body,
        headers={webhooks.SIGNATURE_HEADER: webhooks.sign(body, "not-the-secret-0123456789")},
    )
    assert forged.status_code == 400
    assert workspaces(app) == {}
    headers = {webhooks.SIGNATURE_HEADER: webhooks.sign(body, SECRET), "Idempotency-Key": "k-1"}
    assert httpx.post(app.hooks_url, content=body, headers=headers).json()["done"] == (
        "workspace created"
    )
    again = httpx.post(app.hooks_url, content=body, headers=headers).json()
    assert again == {"ok": True, "duplicate": True}


def test_the_example_app_sends_usage_to_the_backend_with_its_token(
    app: ExampleProvider,
    deliver: Callable[..., None],
    usage_backend: tuple[str, list[dict[str, Any]]],
) -> None:
    deliver("entitlement.active", "ent-1")
    response = httpx.post(f"{app.url}/workspaces/ent-1/usage")
    assert response.status_code == 303
    [sent] = usage_backend[1]
    assert sent["path"] == "/v1/usage"
    assert sent["auth"] == f"Bearer {TOKEN}"
    [record] = sent["records"]
    assert (record["entitlement"], record["metric"], record["value"]) == ("ent-1", "requests", 100)
    assert record["id"]


def test_the_sandbox_attaches_the_example_app_as_receiver_only_when_none_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the app keeps its workspaces under ./provider-data
    url = f"sqlite:///{tmp_path / 'unused.db'}"
    configured = backend_settings(url, "http://127.0.0.1:9", hook_receivers="python:json:dumps")
    assert attach_example_provider(configured, "http://127.0.0.1:9") == (configured, None)
    settings, provider = attach_example_provider(
        backend_settings(url, "http://127.0.0.1:9"), "http://127.0.0.1:9"
    )
    assert provider is not None
    try:
        assert settings.hook_receivers == provider.hooks_url
        assert settings.usage_tokens() == {SANDBOX_USAGE_TOKEN}
        [receiver] = validate_receivers(settings).receivers
        assert receiver.target == provider.hooks_url
        assert httpx.get(provider.url + "/api/workspaces").json()["workspaces"] == {}
    finally:
        provider.stop()
